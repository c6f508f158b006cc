;;; rhash-native-test.el --- Native tables against built-in ones  -*- lexical-binding: t; -*-

;;; Commentary:

;; Native tables (`:storage 'native') must give what a built-in table
;; holding `equal' copies of the same data gives.  A seeded random
;; sequence of operations runs on both over a pool of awkward plain data
;; (RHASH_NATIVE_SEED replays one, RHASH_NATIVE_OPS sets its length); then
;; the contract's errors, copies, mutation inside `rhash-map', non-local
;; exits and Lisp run by the garbage collector mid-operation.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)

(defun rhash-native-test--pool ()
  "Plain data of every kind the contract names."
  (append
   (list nil t 'sym :keyword (intern "é") 'with\ space
         0 1 -1 most-positive-fixnum most-negative-fixnum
         (1+ most-positive-fixnum) (1- most-negative-fixnum) (expt 7 70) (- (expt 2 64))
         0.0 -0.0 1.5 -3.25e-300 1.0e+INF -1.0e+INF 0.0e+NaN -0.0e+NaN
         "" "a" (string-to-multibyte "a") "é" "日本" (string-to-unibyte "\377")
         (string-to-multibyte "\377") (string-to-unibyte "\200abc")
         (propertize "prop" 'face 'bold) (make-string 300 ?x)
         '(1 2 3) '(1 . 2) '(a (b (c . d)) [e "f"]) '((k . v)) '(nil) [] [nil]
         [1 [2 [3 "x"]]] (list 1.5 "s" 'q))))

(defun rhash-native-test--same (a b)
  "Whether A and B are `equal' with the same multibyteness and float bits."
  (cond ((and (stringp a) (stringp b))
         (and (equal a b) (eq (multibyte-string-p a) (multibyte-string-p b))))
        ((and (floatp a) (floatp b)) (eql a b))
        ((and (consp a) (consp b))
         (and (rhash-native-test--same (car a) (car b))
              (rhash-native-test--same (cdr a) (cdr b))))
        ((and (vectorp a) (vectorp b))
         (and (= (length a) (length b)) (cl-every #'rhash-native-test--same a b)))
        (t (equal a b))))

(defun rhash-native-test--alist (table)
  "TABLE's entries in iteration order."
  (let (acc)
    (if (hash-table-p table)
        (maphash (lambda (k v) (push (cons k v) acc)) table)
      (rhash-map (lambda (k v) (push (cons k v) acc)) table))
    (nreverse acc)))

(defun rhash-native-test--seed ()
  "The seed of this run: RHASH_NATIVE_SEED, else a fixed one."
  (let ((s (getenv "RHASH_NATIVE_SEED")))
    (cond ((null s) 20261206)
          ((equal s "random") (random most-positive-fixnum))
          (t (string-to-number s)))))

(defun rhash-native-test--run (test keys)
  "Random operations on a native TEST table and a built-in one, over KEYS."
  (let* ((seed (rhash-native-test--seed))
         (ops (string-to-number (or (getenv "RHASH_NATIVE_OPS") "20000")))
         (state seed)
         (values (rhash-native-test--pool))
         (r (rhash-make :test test :storage 'native))
         (h (make-hash-table :test test)))
    (cl-flet ((rnd (n) (setq state (mod (+ (* state 1103515245) 12345) 2147483648))
                (mod (/ state 65536) n))
              (fail (i what a b)
                (ert-fail (list (format "native %s, seed %d, op %d: %s" test seed i what)
                                a b))))
      (dotimes (i ops)
        (let ((k (nth (rnd (length keys)) keys))
              (v (nth (rnd (length values)) values)))
          (pcase (rnd 10)
            ((or 0 1 2 3) (rhash-put k v r) (puthash k v h))
            ((or 4 5)
             (let ((a (rhash-get k r 'absent)) (b (gethash k h 'absent)))
               (unless (rhash-native-test--same a b) (fail i "get" a b))))
            (6 (rhash-remove k r) (remhash k h))
            (7 (unless (eq (rhash-contains-p k r)
                           (not (eq (gethash k h 'absent) 'absent)))
                 (fail i "contains" k nil)))
            (8 (when (= (rnd 50) 0) (rhash-clear r) (clrhash h)))
            (9 (when (= (rnd 20) 0)
                 (if (= (rnd 2) 0)
                     (setq r (rhash-copy r) h (copy-hash-table h))
                   (rhash-compact r)
                   ;; Compaction forgets free places, as a rebuilt table would.
                   (let ((h2 (make-hash-table :test test)))
                     (maphash (lambda (k v) (puthash k v h2)) h)
                     (setq h h2))))))
          (unless (= (rhash-count r) (hash-table-count h))
            (fail i "count" (rhash-count r) (hash-table-count h)))
          (when (= (% i 500) 499)
            (let ((a (rhash-native-test--alist r)) (b (rhash-native-test--alist h)))
              (unless (and (= (length a) (length b))
                           (cl-every (lambda (x y) (and (rhash-native-test--same (car x) (car y))
                                                        (rhash-native-test--same (cdr x) (cdr y))))
                                     a b))
                (fail i "entries" a b)))))))))

(ert-deftest rhash-native-differential-equal ()
  "An `equal' native table against a built-in one, every kind of key."
  (rhash-native-test--run 'equal (rhash-native-test--pool)))

(ert-deftest rhash-native-differential-eq-eql ()
  "`eq' and `eql' native tables against built-in ones, identity-keeping keys."
  (let ((ints (list 0 1 -1 most-positive-fixnum most-negative-fixnum 42 nil t 'a :b)))
    (rhash-native-test--run 'eq ints)
    (rhash-native-test--run 'eql (append ints (list 1.5 -0.0 0.0 0.0e+NaN
                                                    (1+ most-positive-fixnum)
                                                    (expt 3 90))))))

(ert-deftest rhash-native-storage-and-copies ()
  "Storage is reported and kept; values come out as fresh copies."
  (let ((n (rhash-make :test 'equal :storage 'native))
        (s (list "shared" [1 2])))
    (should (eq (rhash-storage n) 'native))
    (should (eq (rhash-storage (rhash-make)) 'lisp))
    (should (eq (rhash-storage (rhash-copy n)) 'native))
    (rhash-put "k" s n)
    ;; (The Lisp fallback's native tables are built-in ones: no copies.)
    (when rhash--module
      (let ((a (rhash-get "k" n)) (b (rhash-get "k" n)))
        (should (equal a s))
        (should-not (eq a s))
        (should-not (eq a b))
        (setcar a "changed")
        (should (equal (rhash-get "k" n) s)))
      (should-not (eq (car (rhash-keys n)) (car (rhash-keys n)))))
    ;; The first key object's bytes are kept, as the first key is.
    (rhash-put (string-to-multibyte "k") 2 n)
    (should-not (multibyte-string-p (car (rhash-keys n))))
    (should (= (rhash-count n) 1))
    (should (> (plist-get (rhash-stats n) :bytes) 0))))

(defvar rhash--module)

(ert-deftest rhash-native-errors ()
  "Bad input gets the contract's errors, the table unchanged."
  (let ((n (rhash-make :test 'equal :storage 'native))
        (circ (list 1 2)))
    (setcdr (cdr circ) circ)
    (rhash-put 'a 1 n)
    (dolist (bad (list (current-buffer) (make-marker) (make-symbol "u")
                       (make-bool-vector 2 t) (make-hash-table) (record 'r 1)
                       (symbol-function 'car) (list 1 (make-marker))))
      (let ((err (should-error (rhash-put bad 1 n) :type 'wrong-type-argument)))
        (should (equal (cdr err) (list 'rhash-plain-data-p
                                       (if (consp bad) (cadr bad) bad)))))
      (should-error (rhash-put 'k bad n) :type 'wrong-type-argument)
      (should (eq (rhash-get bad n 'absent) 'absent)))
    (should-error (rhash-put circ 1 n) :type 'circular-list)
    (should-error (rhash-put 'a circ n) :type 'circular-list)
    (should (equal (rhash-to-alist n) '((a . 1))))
    (should-error (rhash-put "str" 1 (rhash-make :test 'eq :storage 'native))
                  :type 'rhash-unsupported)
    (should-error (rhash-put 1.5 1 (rhash-make :test 'eq :storage 'native))
                  :type 'rhash-unsupported)
    (rhash-put 1.5 1 (rhash-make :test 'eql :storage 'native))
    (define-hash-table-test 'rhash-native-ci #'string= #'sxhash-equal)
    (should-error (rhash-make :test 'rhash-native-ci :storage 'native)
                  :type 'rhash-unsupported)
    (should-error (rhash-make :storage 'elsewhere) :type 'error)))

(ert-deftest rhash-native-map-mutation-and-exits ()
  "Walks follow `maphash''s rules; non-local exits leave the table whole."
  (let ((n (rhash-make :test 'equal :storage 'native))
        (h (make-hash-table :test 'equal))
        seen-n seen-h)
    (dotimes (i 20) (rhash-put (format "k%d" i) i n) (puthash (format "k%d" i) i h))
    (rhash-map (lambda (k v)
                 (push k seen-n)
                 (if (cl-evenp v) (rhash-remove k n) (rhash-put k (* 10 v) n))
                 (when (= v 3) (rhash-put "late" 0 n)))
               n)
    (maphash (lambda (k v)
               (push k seen-h)
               (if (cl-evenp v) (remhash k h) (puthash k (* 10 v) h))
               (when (= v 3) (puthash "late" 0 h)))
             h)
    (should (equal seen-n seen-h))
    (should (equal (rhash-native-test--alist n) (rhash-native-test--alist h)))
    (should (eq (catch 'out (rhash-map (lambda (_k _v) (throw 'out 'thrown)) n)) 'thrown))
    (should-error (rhash-map (lambda (_k _v) (error "Boom")) n))
    (should (equal (rhash-native-test--alist n) (rhash-native-test--alist h)))
    (let ((count 0))
      (rhash-map (lambda (_k _v) (setq count (1+ count)) (rhash-clear n)) n)
      (should (= count 1))
      (should (rhash-empty-p n)))))

(ert-deftest rhash-native-gc-hook-mid-operation ()
  "Lisp run by the garbage collector may change the table being read."
  (let* ((n (rhash-make :test 'equal :storage 'native))
         (post-gc-hook (list (lambda () (ignore-errors (rhash-put 'gc-was-here t n))))))
    (dotimes (i 2000) (rhash-put (format "key-%d" i) (make-string 50 ?v) n))
    (let ((gc-cons-threshold 10000))
      (dotimes (_ 3)
        (should (>= (length (rhash-keys n)) 2000))
        (should (>= (length (rhash-to-alist n)) 2000))))
    (should (>= (rhash-count n) 2000))))

(ert-deftest rhash-native-bulk-and-mixed ()
  "Bulk and set operations take native tables, mixed with Lisp and built-in ones."
  (let ((n (rhash-from-alist '(("a" . 1) ("b" . 2) ("c" . 3)) :test 'equal))
        (m (rhash-make :test 'equal :storage 'native))
        (h (make-hash-table :test 'equal)))
    (puthash "b" 20 h) (puthash "d" 40 h)
    (rhash-merge m n h)
    (should (equal (rhash-to-alist m) '(("a" . 1) ("b" . 20) ("c" . 3) ("d" . 40))))
    (should (eq (rhash-storage (rhash-union m n)) 'native))
    (should (eq (rhash-storage (rhash-union n m)) 'lisp))
    (should (equal (rhash-to-alist (rhash-intersection m h)) '(("b" . 20) ("d" . 40))))
    (should (equal (rhash-to-alist (rhash-difference m h)) '(("a" . 1) ("c" . 3))))
    (should (equal (rhash-get-many '("a" "zz" "d") m 'none) '(1 none 40)))
    (rhash-put-many ["x" "y"] [7 8] m)
    (should (= (rhash-get "y" m) 8))
    (rhash-merge-with #'+ m n)
    (should (= (rhash-get "a" m) 2))
    (should (rhash-equal (rhash-copy m) m))
    (let ((tl (rhash-tally '("p" "q" "p") :storage 'native)))
      (should (eq (rhash-storage tl) 'native))
      (rhash-tally-into '("p") tl)
      (should (equal (rhash-to-alist tl) '(("p" . 3) ("q" . 1)))))
    ;; A non-plain entry stops a copy into a native table where it stands.
    (let ((src (rhash-make :test 'equal)) (dst (rhash-make :test 'equal :storage 'native)))
      (rhash-put "ok" 1 src) (rhash-put "bad" (make-marker) src) (rhash-put "later" 2 src)
      (should-error (rhash-merge dst src) :type 'wrong-type-argument)
      (should (equal (rhash-to-alist dst) '(("ok" . 1)))))
    (should (equal (rhash-native-test--alist (rhash-to-hash-table m))
                   (rhash-to-alist m)))))

(provide 'rhash-native-test)
;;; rhash-native-test.el ends here
