;;; rhash-bulk-test.el --- Tests of the bulk and set operations  -*- lexical-binding: t; -*-

;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Every bulk function against the Lisp loop it replaces, run over
;; built-in hash tables: fixed cases, every error case, non-local exits
;; (errors, throws, quits from user functions and tests, and C-g polled
;; by the module) with consistency checks, and a seeded random
;; differential suite over awkward keys (signed zeros, NaNs, bignums,
;; unibyte / multibyte / propertized strings, symbols, conses, user
;; tests).  Results are compared entry by entry with `eq', in order.
;;
;; Environment:
;;   RHASH_BULK_SEED    an integer (replays a reported failure) or
;;                      `random' (draws and prints a seed); default 1.
;;   RHASH_BULK_ROUNDS  rounds of the differential suite (default 300).

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)
(require 'rhash-data)

;;;; Helpers

(defun rhash-bulk--same (a b)
  "Non-nil if A and B are `eq', or conses whose parts are the same so."
  (or (eq a b)
      (and (consp a) (consp b)
           (rhash-bulk--same (car a) (car b))
           (rhash-bulk--same (cdr a) (cdr b)))))

(defun rhash-bulk--same-entries (r h)
  "Non-nil if rhash R holds the same entries as built-in H, in order.
Keys and values are compared with `rhash-bulk--same'."
  (and (rhash-p r)
       (eq (rhash-test r) (hash-table-test h))
       (let ((ra (rhash-data-entries r)) (ha (rhash-data-entries h)))
         (and (= (length ra) (length ha))
              (cl-every (lambda (x y) (and (eq (car x) (car y))
                                           (rhash-bulk--same (cdr x) (cdr y))))
                        ra ha)))))

(defun rhash-bulk--consistent-p (table)
  "Non-nil if TABLE's count, walk, keys and lookups agree."
  (let ((n 0) (ok t))
    (rhash-map (lambda (k v)
                 (setq n (1+ n))
                 (unless (and (rhash-contains-p k table)
                              (eq (rhash-get k table) v))
                   (setq ok nil)))
               table)
    (and ok (= n (rhash-count table)) (= n (length (rhash-keys table)))
         (>= (rhash-size table) n))))

(defun rhash-bulk--twins (test pairs &optional removals)
  "An rhash table and a built-in table with TEST, filled alike.
PAIRS are put in order, then the keys REMOVALS removed."
  (let ((r (rhash-make :test test)) (h (make-hash-table :test test)))
    (dolist (p pairs) (rhash-put (car p) (cdr p) r) (puthash (car p) (cdr p) h))
    (dolist (k removals) (rhash-remove k r) (remhash k h))
    (cons r h)))

(defmacro rhash-bulk--outcome (&rest body)
  "The value of BODY, or (error . ERR) / (throw TAG . VALUE) when it exits."
  (declare (indent 0))
  `(let ((done nil))
     (let ((v (catch 'rhash-bulk-tag
                (condition-case err
                    (prog1 (progn ,@body) (setq done t))
                  ((error quit) (setq done t) (cons 'error err))))))
       (if done v (cons 'throw v)))))

;;;; The Lisp loops the bulk functions replace (over built-in tables)

(defun rhash-bulk--ref-merge (table sources &optional fn)
  "`rhash-merge' / `rhash-merge-with' FN as a `maphash' loop."
  (dolist (s sources)
    (maphash (lambda (k v)
               (let ((old (gethash k table 'rhash-bulk--none)))
                 (puthash k (if (and fn (not (eq old 'rhash-bulk--none)))
                                (funcall fn old v)
                              v)
                          table)))
             s))
  table)

(defun rhash-bulk--has (k h)
  "Non-nil if built-in H holds K."
  (not (eq (gethash k h 'rhash-bulk--none) 'rhash-bulk--none)))

(defun rhash-bulk--ref-union (a b)
  "`rhash-union' as a Lisp loop."
  (let ((r (make-hash-table :test (hash-table-test a))))
    (maphash (lambda (k v) (puthash k v r)) a)
    (maphash (lambda (k v) (unless (rhash-bulk--has k a) (puthash k v r))) b)
    r))

(defun rhash-bulk--ref-filter (a b keep)
  "`rhash-intersection' (KEEP non-nil) or `rhash-difference' as a Lisp loop."
  (let ((r (make-hash-table :test (hash-table-test a))))
    (maphash (lambda (k v) (when (eq keep (rhash-bulk--has k b)) (puthash k v r))) a)
    r))

(defun rhash-bulk--ref-equal (a b &optional pred)
  "`rhash-equal' as a Lisp loop."
  (and (= (hash-table-count a) (hash-table-count b))
       (catch 'rhash-bulk-done
         (maphash (lambda (k v)
                    (unless (and (rhash-bulk--has k b)
                                 (funcall (or pred #'equal) v (gethash k b)))
                      (throw 'rhash-bulk-done nil)))
                  a)
         t)))

(defun rhash-bulk--ref-tally (seq table)
  "`rhash-tally-into' over built-in TABLE as a `cl-incf' loop."
  (mapc (lambda (x) (cl-incf (gethash x table 0))) seq)
  table)

(defun rhash-bulk--ref-uniq (seq test)
  "`rhash-uniq' as a hash table loop."
  (let ((seen (make-hash-table :test test)) out)
    (mapc (lambda (x) (unless (rhash-bulk--has x seen) (puthash x t seen) (push x out)))
          seq)
    (nreverse out)))

;;;; Fixed cases

(ert-deftest rhash-bulk-get-many ()
  (let* ((tw (rhash-bulk--twins 'equal '(("a" . 1) ("b" . nil) (3 . c))))
         (r (car tw)) (h (cdr tw)))
    (dolist (table (list r h))
      (should (equal (rhash-get-many (list "a" "b" "z" 3) table) '(1 nil nil c)))
      (should (equal (rhash-get-many (vector "a" "z") table 'd) [1 d]))
      (should (equal (rhash-get-many nil table) nil))
      (should (equal (rhash-get-many [] table) [])))
    ;; A fresh sequence, even for a vector.
    (let ((keys (vector "a")))
      (should-not (eq (rhash-get-many keys r) keys))
      (should (equal keys ["a"])))
    (should-error (rhash-get-many '(1) 'nope) :type 'wrong-type-argument)
    (should (equal (should-error (rhash-get-many '(1) 'nope)) '(wrong-type-argument rhash-p nope)))
    (should-error (rhash-get-many "ab" r) :type 'wrong-type-argument)
    (should-error (rhash-get-many '(1 . 2) r) :type 'wrong-type-argument)))

(ert-deftest rhash-bulk-put-many ()
  (let ((r (rhash-make :test 'equal)))
    (should (eq (rhash-put-many (list "x" "y" (copy-sequence "x")) [1 2 3] r) r))
    (should (equal (rhash-to-alist r) '(("x" . 3) ("y" . 2))))
    (rhash-put-many [] nil r)
    (should (= (rhash-count r) 2))
    ;; Unequal lengths: an error naming both, and the table unchanged.
    (let ((err (should-error (rhash-put-many '(a b c) '(1 2) r) :type 'error)))
      (should (memq 3 err))
      (should (memq 2 err)))
    (should (equal (rhash-to-alist r) '(("x" . 3) ("y" . 2))))
    ;; A table written must be an rhash table (with the module).
    (when rhash--module
      (let ((h (make-hash-table)))
        (should (equal (should-error (rhash-put-many '(1) '(1) h)) (list 'wrong-type-argument 'rhash-p h)))))
    (should-error (rhash-put-many 1 '(1) r) :type 'wrong-type-argument)))

(ert-deftest rhash-bulk-merge ()
  (let* ((a (rhash-from-alist '((1 . a) (2 . b)) :test 'eql))
         (b (rhash-from-alist '((2 . x) (3 . y)) :test 'eql))
         (h (make-hash-table :test 'equal)))
    (puthash 4 'z h)
    (puthash 1 'w h)
    (should (eq (rhash-merge a b h) a))
    (should (equal (rhash-to-alist a) '((1 . w) (2 . x) (3 . y) (4 . z))))
    (should (eq (rhash-merge a) a))
    (should (eq (rhash-merge a a) a))
    (should (= (rhash-count a) 4))
    (when rhash--module
      (should (equal (should-error (rhash-merge h a)) (list 'wrong-type-argument 'rhash-p h))))
    ;; A bad source is reported before anything is put.
    (should-error (rhash-merge (rhash-make) b 'nope) :type 'wrong-type-argument)
    (let ((c (rhash-make)))
      (should-error (rhash-merge c b 'nope))
      (should (rhash-empty-p c)))))

(ert-deftest rhash-bulk-merge-with ()
  (let ((a (rhash-from-alist '((1 . 10) (2 . 20))))
        (b (rhash-from-alist '((2 . 1) (3 . 2)))))
    (should (eq (rhash-merge-with #'+ a b b) a))
    (should (equal (rhash-to-alist a) '((1 . 10) (2 . 22) (3 . 4))))
    (rhash-merge-with (lambda (old new) (list old new)) a (rhash-from-alist '((1 . x))))
    (should (equal (rhash-get 1 a) '(10 x)))
    ;; FUNCTION may remove the key: its result is put back, as `puthash' would.
    (rhash-merge-with (lambda (_ new) (rhash-remove 3 a) new) a (rhash-from-alist '((3 . 9))))
    (should (equal (rhash-to-alist a) '((1 10 x) (2 . 22) (3 . 9))))
    (should (rhash-bulk--consistent-p a))
    (should-error (rhash-merge-with #'+ 'nope a) :type 'wrong-type-argument)))

(ert-deftest rhash-bulk-set-operations ()
  (let* ((a (rhash-from-alist '((1 . a) (2 . b) (3 . c)) :test 'eql))
         (b (rhash-from-alist '((3 . x) (4 . y) (1 . z)) :test 'equal))
         (hb (rhash-to-hash-table b)))
    (dolist (bb (list b hb))
      (let ((u (rhash-union a bb)) (i (rhash-intersection a bb)) (d (rhash-difference a bb)))
        (should (eq (rhash-test u) 'eql))
        (should (equal (rhash-to-alist u) '((1 . a) (2 . b) (3 . c) (4 . y))))
        (should (equal (rhash-to-alist i) '((1 . a) (3 . c))))
        (should (equal (rhash-to-alist d) '((2 . b))))
        (should (rhash-bulk--consistent-p u))))
    ;; Results are fresh rhash tables, even from built-in arguments.
    (let ((u (rhash-union hb (rhash-to-hash-table a))))
      (should (rhash-p u))
      (should (eq (rhash-test u) 'equal))
      (should (equal (rhash-to-alist u) '((3 . x) (4 . y) (1 . z) (2 . b)))))
    (should (rhash-empty-p (rhash-intersection a (rhash-make))))
    (should (equal (rhash-to-alist (rhash-difference a (make-hash-table))) (rhash-to-alist a)))
    (should-not (eq (rhash-union a (rhash-make)) a))
    (dolist (f (list #'rhash-union #'rhash-intersection #'rhash-difference))
      (should (equal (should-error (funcall f a 'nope)) '(wrong-type-argument rhash-p nope)))
      (should (equal (should-error (funcall f [1] a)) '(wrong-type-argument rhash-p [1]))))))

(ert-deftest rhash-bulk-union-across-tests ()
  ;; Two of B's `eq' keys are one `equal' key of A's test: the later
  ;; value wins, as repeated puts give.
  (let* ((s1 (copy-sequence "k")) (s2 (copy-sequence "k"))
         (a (rhash-from-alist '((1 . a)) :test 'equal))
         (b (rhash-make :test 'eq)))
    (rhash-put s1 1 b)
    (rhash-put s2 2 b)
    (let ((u (rhash-union a b)))
      (should (equal (rhash-to-alist u) '((1 . a) ("k" . 2))))
      (should (eq (car (rhash-keys (rhash-difference u a))) s1))
      (should (rhash-bulk--consistent-p u)))))

(ert-deftest rhash-bulk-equal ()
  (let* ((a (rhash-from-alist (list (cons 1 (list 1)) (cons 2 "two")) :test 'eql))
         (b (rhash-from-alist (list (cons 2 (copy-sequence "two")) (cons 1 (list 1))) :test 'eql)))
    (should (eq (rhash-equal a b) t))
    (should (rhash-equal a (rhash-to-hash-table b)))
    (should (rhash-equal (rhash-to-hash-table a) b))
    (should-not (rhash-equal a b #'eq))
    (should (rhash-equal a a #'eq))
    (rhash-put 3 nil a)
    (should-not (rhash-equal a b))
    (rhash-put 4 nil b)
    (should-not (rhash-equal a b))
    ;; PREDICATE gets A's value first; it is not called when counts differ.
    (let (calls)
      (rhash-equal (rhash-from-alist '((1 . a))) (rhash-from-alist '((1 . b)))
                   (lambda (x y) (push (list x y) calls) t))
      (should (equal calls '((a b))))
      (setq calls nil)
      (rhash-equal a (rhash-make) (lambda (x y) (push (list x y) calls) t))
      (should-not calls))
    (should (rhash-equal (rhash-make) (make-hash-table)))
    (should-error (rhash-equal a 'nope) :type 'wrong-type-argument)))

(ert-deftest rhash-bulk-tally ()
  (let ((r (rhash-tally (list "a" "b" (copy-sequence "a") 1 1 1.0 -0.0 0.0))))
    (should (eq (rhash-test r) 'equal))
    (should (equal (rhash-to-alist r) '(("a" . 2) ("b" . 1) (1 . 2) (1.0 . 1) (-0.0 . 1) (0.0 . 1)))))
  (should (equal (rhash-to-alist (rhash-tally [x y x] :test 'eq :size 10)) '((x . 2) (y . 1))))
  (should (eq (rhash-test (rhash-tally nil :size 3)) 'equal))
  (should (rhash-empty-p (rhash-tally [])))
  (should-error (rhash-tally '(1) :test 'nope) :type 'error)
  (should-error (rhash-tally '(1) :weakness 'key) :type 'rhash-unsupported)
  (should-error (rhash-tally 5) :type 'wrong-type-argument))

(ert-deftest rhash-bulk-tally-into ()
  (let ((r (rhash-from-alist (list (cons 'a 1) (cons 'b 1.5) (cons 'c most-positive-fixnum)
                                   (cons 'd (1- (expt 2 63)))
                                   (cons 'm (with-current-buffer (get-buffer-create " rhash-bulk")
                                                   (insert "0123456789")
                                                   (copy-marker 5)))))))
    (should (eq (rhash-tally-into '(a b c d m e e) r) r))
    (should (equal (rhash-to-alist r)
                   (list (cons 'a 2) (cons 'b 2.5) (cons 'c (1+ most-positive-fixnum))
                         (cons 'd (expt 2 63)) (cons 'm 6) (cons 'e 2))))
    ;; A value that is not a number: `cl-incf's error; the counts before it stay.
    (rhash-put 'x "str" r)
    (should (equal (should-error (rhash-tally-into [a x a] r))
                   '(wrong-type-argument number-or-marker-p "str")))
    (should (equal (rhash-get 'a r) 3))
    (should (rhash-bulk--consistent-p r))
    (when rhash--module
      (let ((h (make-hash-table)))
        (should (equal (should-error (rhash-tally-into '(a) h)) (list 'wrong-type-argument 'rhash-p h)))))
    (should-error (rhash-tally-into 'a r) :type 'wrong-type-argument)))

(ert-deftest rhash-bulk-uniq ()
  (let* ((s (list "a" "b" (copy-sequence "a") 1 1.0 1 'x nil nil (propertize "b" 'face 'bold))))
    (should (equal (rhash-uniq s) '("a" "b" 1 1.0 x nil)))
    (should (eq (car (rhash-uniq s)) (car s)))
    (should (equal (rhash-uniq s 'equal) (rhash-uniq (vconcat s))))
    (should (= (length (rhash-uniq s 'eq)) 8))
    (should (equal (rhash-uniq (list 0.0 -0.0 0.0) 'eql) '(0.0 -0.0)))
    (should (equal (rhash-uniq (list (expt 2 70) (expt 2 70)) 'eql) (list (expt 2 70))))
    (should (= (length (rhash-uniq (list (expt 2 70) (expt 2 70)) 'eq)) 2))
    ;; A fresh list, even when nothing repeats.
    (let ((l (list 1 2 3)))
      (should-not (eq (rhash-uniq l) l))
      (should (equal (rhash-uniq l) l)))
    (should (equal (rhash-uniq nil) nil))
    (should (equal (rhash-uniq []) nil))
    (define-hash-table-test 'rhash-bulk-ci
      (lambda (a b) (string= (downcase a) (downcase b)))
      (lambda (k) (sxhash-equal (downcase k))))
    (should (equal (rhash-uniq '("A" "b" "a" "B" "c") 'rhash-bulk-ci) '("A" "b" "c")))
    (should (equal (should-error (rhash-uniq '(1) 'nope)) '(error "Invalid hash table test" nope)))
    (should (equal (should-error (rhash-uniq '(1) "eq")) '(error "Invalid hash table test" "eq")))
    (should-error (rhash-uniq 7) :type 'wrong-type-argument)))

(ert-deftest rhash-bulk-compact-and-stats ()
  ;; The module's storage figures (built-in tables never shrink).
  (skip-unless rhash--module)
  (let ((r (rhash-make :size 5000)) (h (make-hash-table)))
    (dotimes (i 2000) (rhash-put i (* i i) r) (puthash i (* i i) h))
    (dotimes (i 1990) (let ((k (+ i 5))) (rhash-remove k r) (remhash k h)))
    (let ((before (rhash-stats r)))
      (should (= (plist-get before :count) (rhash-count r)))
      (dolist (k '(:count :capacity :index-slots :tombstones :max-probe :bytes))
        (should (natnump (plist-get before k))))
      (should (floatp (plist-get before :mean-probe)))
      (should (eq (rhash-compact r) r))
      (let ((after (rhash-stats r)))
        (should (= (plist-get after :capacity) (rhash-count r)))
        (should (= (rhash-size r) (rhash-count r)))
        (should (< (plist-get after :bytes) (/ (plist-get before :bytes) 10)))
        (should (< (plist-get after :index-slots) (plist-get before :index-slots)))
        (should (= (plist-get after :tombstones) 0))
        (should (<= 1 (plist-get after :mean-probe) (plist-get after :max-probe)))))
    (should (rhash-bulk--same-entries r h))
    (should (rhash-bulk--consistent-p r))
    ;; Freed places are forgotten: new keys are appended.
    (rhash-put 'new 1 r)
    (should (eq (car (last (rhash-keys r))) 'new))
    ;; A walk in progress follows the new storage.
    (let ((seen 0))
      (rhash-map (lambda (_k _v) (when (= (cl-incf seen) 2) (rhash-compact r))) r)
      (should (= seen (rhash-count r))))
    ;; Empty and already compact tables.
    (let ((e (rhash-make)))
      (rhash-compact e)
      (should (equal (plist-get (rhash-stats e) :count) 0))
      (should (equal (plist-get (rhash-stats e) :mean-probe) 0.0))
      (rhash-put 1 1 e) (rhash-remove 1 e) (rhash-compact e)
      (should (rhash-empty-p e))
      (rhash-put 2 2 e)
      (should (equal (rhash-to-alist e) '((2 . 2))))
      (rhash-compact e) (rhash-compact e)
      (should (equal (rhash-to-alist e) '((2 . 2)))))
    (should (equal (should-error (rhash-compact h)) (list 'wrong-type-argument 'rhash-p h)))
    (should (equal (should-error (rhash-stats 1)) '(wrong-type-argument rhash-p 1)))))

(ert-deftest rhash-bulk-writes-refused-while-busy ()
  ;; A user hash function that writes into the table being filled gets
  ;; the built-ins' error; the table stays consistent.
  (let (table)
    (define-hash-table-test 'rhash-bulk-meddle
      #'equal (lambda (k) (when (eq k 'meddle) (rhash-put 'other 1 table)) (sxhash-equal k)))
    (setq table (rhash-make :test 'rhash-bulk-meddle))
    (should-error (rhash-tally-into '(a meddle) table) :type 'error)
    (should (equal (rhash-to-alist table) '((a . 1))))
    (should-error (rhash-put-many '(b meddle) '(1 2) table) :type 'error)
    (should (equal (rhash-to-alist table) '((a . 1) (b . 1))))
    (should (rhash-bulk--consistent-p table))))

;;;; Non-local exits

(defvar rhash-bulk--trap nil
  "A key on which the trap test's hash function exits, and how.")

(define-hash-table-test 'rhash-bulk-trap
  #'equal
  (lambda (k)
    (pcase rhash-bulk--trap
      (`(,key . error) (when (equal k key) (error "Trapped %S" k)))
      (`(,key . throw) (when (equal k key) (throw 'rhash-bulk-tag k)))
      (`(,key . quit) (when (equal k key) (signal 'quit nil)))
      (`(,key . C-g) (when (equal k key) (setq quit-flag t))))
    (sxhash-equal k)))

(defun rhash-bulk--prefix-p (table keys)
  "Non-nil if TABLE's keys are, in order, the first of KEYS."
  (let ((tk (rhash-keys table)))
    (equal tk (cl-subseq keys 0 (length tk)))))

(ert-deftest rhash-bulk-exits-leave-tables-consistent ()
  (let ((keys (number-sequence 0 9999)))
    (dolist (how '(error throw quit C-g))
      (dolist (op (list (lambda (tb) (rhash-put-many keys keys tb))
                        (lambda (tb) (rhash-tally-into keys tb))
                        (lambda (tb) (rhash-merge tb (rhash-from-alist (mapcar (lambda (k) (cons k k)) keys))))
                        (lambda (tb) (rhash-merge tb (let ((h (make-hash-table)))
                                                      (dolist (k keys h) (puthash k k h)))))))
        (let ((table (rhash-make :test 'rhash-bulk-trap))
              (rhash-bulk--trap (cons 5000 how)))
          (let ((out (rhash-bulk--outcome (condition-case nil (funcall op table) (quit 'quit)))))
            (setq quit-flag nil)
            (should-not (rhash-p out))
            (should (rhash-bulk--consistent-p table))
            (should (rhash-bulk--prefix-p table keys))
            ;; Errors and throws come from key 5000 itself: all before it are in.
            (unless (eq how 'C-g)
              (should (= (rhash-count table) 5000)))))))))

(ert-deftest rhash-bulk-exits-from-function-and-predicate ()
  (let* ((src (rhash-from-alist (mapcar (lambda (k) (cons k k)) (number-sequence 0 99))))
         (table (rhash-from-alist (mapcar (lambda (k) (cons k 0)) (number-sequence 0 99 2))))
         (ref (rhash-to-hash-table table))
         (fn (lambda (old new) (if (= new 50) (throw 'rhash-bulk-tag 'out) (+ old new)))))
    (should (equal (rhash-bulk--outcome (rhash-merge-with fn table src)) '(throw . out)))
    (should (equal (rhash-bulk--outcome (rhash-bulk--ref-merge ref (list (rhash-to-hash-table src)) fn))
                   '(throw . out)))
    (should (rhash-bulk--consistent-p table))
    (should (equal (rhash-to-alist table) (rhash-data-entries ref)))
    ;; An erring predicate leaves both tables as they were.
    (let ((copy (rhash-to-alist table)))
      (should-error (rhash-equal table (rhash-copy table) (lambda (_k _v) (error "No"))))
      (should (equal (rhash-to-alist table) copy)))
    ;; Set operations and uniq with an erring user test: no result, A intact.
    (let ((a (rhash-make :test 'rhash-bulk-trap)) (rhash-bulk--trap nil))
      (dotimes (i 100) (rhash-put i i a))
      (setq rhash-bulk--trap (cons 50 'error))
      (dolist (f (list (lambda () (rhash-intersection src a))
                       (lambda () (rhash-difference src a))
                       (lambda () (rhash-union a src))
                       (lambda () (rhash-uniq (number-sequence 0 99) 'rhash-bulk-trap))
                       (lambda () (rhash-get-many (number-sequence 0 99) a))))
        (should (eq (car (rhash-bulk--outcome (funcall f))) 'error)))
      (setq rhash-bulk--trap nil)
      (should (= (rhash-count a) 100))
      (should (rhash-bulk--consistent-p a)))))

;;;; Differential suite

(defvar rhash-bulk--state 1 "State of the xorshift32 generator.")

(defun rhash-bulk--rand (n)
  "A pseudo-random integer in [0, N)."
  (% (setq rhash-bulk--state (rhash-data-xorshift rhash-bulk--state)) n))

(defun rhash-bulk--seed ()
  "The seed: RHASH_BULK_SEED, or 1."
  (rhash-data-seed "RHASH_BULK_SEED"))

(defun rhash-bulk--pool ()
  "Awkward keys, several of them `equal' but not `eq' twins."
  (let ((r (lambda (s) (car (read-from-string s)))))
    (append
     (list 0 1 -1 42 most-positive-fixnum most-negative-fixnum
           (funcall r "0.0") (funcall r "-0.0") (funcall r "0.0") (funcall r "1.0")
           (funcall r "0.0e+NaN") (funcall r "-0.0e+NaN") (funcall r "0.0e+NaN")
           (funcall r "1.0e+INF")
           (expt 2 70) (expt 2 70) (- (expt 2 64)) (1+ most-positive-fixnum) (1+ most-positive-fixnum)
           (copy-sequence "abc") (copy-sequence "abc") (propertize (copy-sequence "abc") 'face 'bold)
           (string-to-multibyte (copy-sequence "abc")) "" (make-string 0 ?a)
           (copy-sequence "\377") (string-to-multibyte (copy-sequence "\377"))
           (string #xe9) (copy-sequence (string #xe9)) (encode-coding-string (string #xe9) 'utf-8)
           (string #x65e5 #x672c) (concat (make-string 40 ?x) "a") (concat (make-string 40 ?x) "a")
           'foo 'bar nil t :kw (make-symbol "foo") (make-symbol "foo")
           (list 1 2) (list 1 2) (cons 1 2) (cons 1 2) (list "abc" 1.5) (list "abc" 1.5)
           (vector 1 2) (vector 1 2) (record 'rec 1) (make-bool-vector 3 t))
     (mapcar (lambda (i) (format "k%d" i)) (number-sequence 0 30))
     (number-sequence 100 140))))

(define-hash-table-test 'rhash-bulk-collide
  #'equal (lambda (k) (% (sxhash-equal k) 3)))

(defun rhash-bulk--pick (pool)
  "A random element of vector POOL."
  (aref pool (rhash-bulk--rand (length pool))))

(defun rhash-bulk--random-twins (pool test)
  "Random twin tables with TEST over POOL, with some removals."
  (let ((pairs nil) (removals nil) (n (rhash-bulk--rand 40)))
    (dotimes (i n) (push (cons (rhash-bulk--pick pool) (if (= 0 (% i 3)) (rhash-bulk--pick pool) i)) pairs))
    (dotimes (_ (rhash-bulk--rand 10)) (push (rhash-bulk--pick pool) removals))
    ;; Re-puts after removals reuse freed places.
    (dotimes (i (rhash-bulk--rand 5)) (push (cons (rhash-bulk--pick pool) (- i)) pairs))
    (rhash-bulk--twins test (nreverse pairs) removals)))

(defun rhash-bulk--random-seq (pool)
  "A random list or vector of POOL elements, with repeats."
  (let (l)
    (dotimes (_ (rhash-bulk--rand 60)) (push (rhash-bulk--pick pool) l))
    (if (= 0 (rhash-bulk--rand 2)) l (vconcat l))))

(defun rhash-bulk--check-round (pool round)
  "One differential round over POOL; ROUND names it in failures."
  (let* ((tests '(eq eql equal rhash-bulk-collide))
         (ta (nth (rhash-bulk--rand 4) tests))
         (tb (if (= 0 (rhash-bulk--rand 3)) (nth (rhash-bulk--rand 4) tests) ta))
         (A (rhash-bulk--random-twins pool ta))
         (B (rhash-bulk--random-twins pool tb))
         (ra (car A)) (ha (cdr A)) (rb (car B)) (hb (cdr B))
         (ctx (list :round round :tests ta tb)))
    (cl-flet ((check (what ok) (unless ok (ert-fail (append (list what) ctx)))))
      ;; get-many, on both kinds of table.
      (let ((keys (rhash-bulk--random-seq pool)))
        (let ((want (cl-map (if (listp keys) 'list 'vector)
                            (lambda (k) (gethash k ha 'dflt)) keys)))
          (check 'get-many (cl-every #'eq (rhash-get-many keys ra 'dflt) want))
          (check 'get-many-builtin (cl-every #'eq (rhash-get-many keys ha 'dflt) want))))
      ;; put-many.
      (let* ((keys (rhash-bulk--random-seq pool))
             (vals (make-list (length keys) nil))
             (r (rhash-copy ra)) (h (copy-hash-table ha)))
        (cl-loop for c on vals for i from 0 do (setcar c i))
        (rhash-put-many keys vals r)
        (cl-mapc (lambda (k v) (puthash k v h)) keys vals)
        (check 'put-many (rhash-bulk--same-entries r h))
        (check 'put-many-consistent (rhash-bulk--consistent-p r)))
      ;; merge and merge-with, from rhash and built-in sources.
      (let ((r (rhash-copy ra)) (h (copy-hash-table ha)))
        (rhash-merge r rb hb rb)
        (rhash-bulk--ref-merge h (list hb hb hb))
        (check 'merge (rhash-bulk--same-entries r h)))
      (let ((r (rhash-copy ra)) (h (copy-hash-table ha)))
        (rhash-merge-with #'cons r rb hb)
        (rhash-bulk--ref-merge h (list hb hb) #'cons)
        (check 'merge-with (rhash-bulk--same-entries r h))
        (check 'merge-with-consistent (rhash-bulk--consistent-p r)))
      ;; Set operations, each argument rhash or built-in.
      (dolist (args (list (list ra rb) (list ha rb) (list ra hb) (list ha hb)))
        (let ((x (car args)) (y (cadr args)))
          (check 'union (rhash-bulk--same-entries (rhash-union x y) (rhash-bulk--ref-union ha hb)))
          (check 'intersection (rhash-bulk--same-entries (rhash-intersection x y)
                                                         (rhash-bulk--ref-filter ha hb t)))
          (check 'difference (rhash-bulk--same-entries (rhash-difference x y)
                                                       (rhash-bulk--ref-filter ha hb nil)))
          (check 'equal (eq (rhash-equal x y) (rhash-bulk--ref-equal ha hb)))))
      (check 'equal-self (rhash-equal ra (rhash-copy ra) #'eq))
      (check 'equal-builtin-twin (rhash-equal ra ha #'eq))
      (let ((hc (copy-hash-table ha)) (rc (rhash-copy ra)))
        (when (> (hash-table-count hc) 0)
          (let ((k (car (car (rhash-data-entries hc)))))
            (puthash k 'changed hc) (rhash-put k 'changed rc)))
        (check 'equal-changed (eq (rhash-equal ra rc) (rhash-bulk--ref-equal ha hc))))
      ;; tally, tally-into, uniq.
      (let* ((seq (rhash-bulk--random-seq pool))
             (h (make-hash-table :test ta)))
        (check 'tally (rhash-bulk--same-entries (rhash-tally seq :test ta)
                                                (rhash-bulk--ref-tally seq h)))
        (let ((r (rhash-tally seq :test ta)))
          (rhash-tally-into seq r)
          (rhash-bulk--ref-tally seq h)
          (check 'tally-into (rhash-bulk--same-entries r h)))
        (check 'uniq (cl-every #'eq (rhash-uniq seq ta) (rhash-bulk--ref-uniq seq ta)))
        (check 'uniq-length (= (length (rhash-uniq seq ta)) (length (rhash-bulk--ref-uniq seq ta)))))
      ;; compact keeps the entries and their order.
      (let ((r (rhash-copy ra)))
        (rhash-compact r)
        (check 'compact (rhash-bulk--same-entries r ha))
        (check 'compact-consistent (rhash-bulk--consistent-p r))
        ;; (Built-in tables, without the module, never shrink.)
        (when rhash--module
          (check 'compact-size (= (rhash-size r) (rhash-count r))))))))

(ert-deftest rhash-bulk-differential ()
  (let* ((seed (rhash-bulk--seed))
         (rounds (let ((e (getenv "RHASH_BULK_ROUNDS")))
                   (if (and e (string-match-p "\\`[0-9]+\\'" e)) (string-to-number e) 300)))
         (pool (vconcat (rhash-bulk--pool))))
    (message "rhash-bulk-differential: seed %d, %d rounds (RHASH_BULK_SEED replays)" seed rounds)
    (setq rhash-bulk--state (if (zerop (logand seed #xFFFFFFFF)) 1 (logand seed #xFFFFFFFF)))
    (dotimes (i rounds)
      (rhash-bulk--check-round pool i))))

(provide 'rhash-bulk-test)
;;; rhash-bulk-test.el ends here
