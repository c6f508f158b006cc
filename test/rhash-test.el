;;; rhash-test.el --- Parity tests: each rhash function vs its built-in  -*- lexical-binding: t; -*-

;;; Commentary:

;; Every test runs the same operations on an rhash table and a built-in
;; hash table and compares the results with the running Emacs, so the
;; expectations follow the Emacs version instead of literals.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'map)
(require 'subr-x)
(require 'rhash)

(defun rhash-test--order (table)
  "TABLE's entries as (KEY . VALUE) in rhash iteration order."
  (let (acc)
    (rhash-map (lambda (k v) (push (cons k v) acc)) table)
    (nreverse acc)))

(defun rhash-test--horder (table)
  "Built-in TABLE's entries as (KEY . VALUE) in maphash order."
  (let (acc)
    (maphash (lambda (k v) (push (cons k v) acc)) table)
    (nreverse acc)))

(defun rhash-test--both (test ops)
  "Run OPS, a list of (OP ARGS...), on a TEST rhash table and built-in table.
Check every result and the final order; return the rhash table."
  (let ((r (rhash-make :test test))
        (h (make-hash-table :test test)))
    (dolist (op ops)
      (pcase op
        (`(put ,k ,v) (should (eq (rhash-put k v r) (puthash k v h))))
        (`(get ,k) (should (eq (rhash-get k r) (gethash k h))))
        (`(get ,k ,d) (should (eq (rhash-get k r d) (gethash k h d))))
        (`(rem ,k) (should (eq (rhash-remove k r) (remhash k h))))
        (`(clr) (should (eq (rhash-clear r) r)) (clrhash h)))
      (should (= (rhash-count r) (hash-table-count h))))
    (should (equal (rhash-test--order r) (rhash-test--horder h)))
    r))

;;;; Basic operations

(ert-deftest rhash-test-get-put-remove ()
  (let ((d (make-symbol "default")))
    (rhash-test--both
     'eql
     `((put 1 a) (put 2 b) (get 1) (get 3) (get 3 ,d) (put 1 c) (get 1)
       (put 4 nil) (get 4 ,d) (rem 2) (rem 2) (get 2 ,d) (put 5 e) (put 6 f)))))

(ert-deftest rhash-test-return-values ()
  (let ((r (rhash-make)) (v (list 'value)))
    (should (eq (rhash-put 'k v r) v))
    (should (eq (rhash-get 'k r) v))
    (should (null (rhash-remove 'k r)))
    (should (null (rhash-remove 'absent r)))
    (should (eq (rhash-clear r) r))
    (should (null (rhash-map #'ignore r)))
    (should (eq (rhash-weakness r) nil))
    (should (eq (rhash-p r) t))
    ;; Without the module every table is a built-in one.
    (should (eq (rhash-p (make-hash-table)) (not rhash--module)))
    (should (eq (rhash-p nil) nil))))

(ert-deftest rhash-test-replace-keeps-first-key-and-place ()
  (let* ((k1 (copy-sequence "key")) (k2 (copy-sequence "key"))
         (r (rhash-make :test 'equal)))
    (rhash-put k1 1 r)
    (rhash-put "other" 2 r)
    (rhash-put k2 3 r)
    (should (eq (car (rhash-keys r)) k1))
    (should (equal (rhash-to-alist r) '(("key" . 3) ("other" . 2))))))

(ert-deftest rhash-test-order-insertion-lifo-clear ()
  (rhash-test--both 'eql '((put 5 a) (put 3 b) (put 9 c) (put 1 d) (put 7 e)
                           (rem 9) (put 100 f) (rem 3) (rem 7) (put 50 g)
                           (put 60 h) (put 70 i)))
  ;; Clearing resets to insertion order; clearing an empty table keeps
  ;; the free places.
  (rhash-test--both 'eql '((put 1 a) (put 2 b) (put 3 c) (clr) (put 3 c)
                           (put 1 a)))
  (rhash-test--both 'eql '((put 1 a) (put 2 b) (put 3 c) (rem 1) (rem 3)
                           (rem 2) (clr) (put 7 x) (put 8 y) (put 9 z))))

(ert-deftest rhash-test-keys-values-conversions ()
  (let ((r (rhash-make :test 'equal))
        (h (make-hash-table :test 'equal)))
    (dotimes (i 50)
      (let ((k (format "k%d" i)))
        (rhash-put k i r) (puthash k i h)))
    (dotimes (i 10)
      (let ((k (format "k%d" (* 3 i))))
        (rhash-remove k r) (remhash k h)))
    (rhash-put "new" 'n r) (puthash "new" 'n h)
    (let ((order (rhash-test--horder h)))
      (should (equal (rhash-keys r) (mapcar #'car order)))
      (should (equal (rhash-values r) (mapcar #'cdr order)))
      (should (equal (rhash-to-alist r) order))
      (should (equal (rhash-to-plist r)
                     (cl-loop for (k . v) in order append (list k v))))
      (should (equal (rhash-test--horder (rhash-to-hash-table r)) order))
      (should (eq (hash-table-test (rhash-to-hash-table r)) 'equal))
      (should (equal (rhash-test--order (rhash-from-hash-table h)) order))
      (should (eq (rhash-test (rhash-from-hash-table h)) 'equal))
      (should (equal (rhash-test--order (rhash-from-alist order :test 'equal)) order))
      (should (equal (rhash-test--order
                      (rhash-from-plist (rhash-to-plist r) :test 'equal))
                     order)))))

(ert-deftest rhash-test-from-alist-later-duplicates-win ()
  (let* ((k1 (copy-sequence "a")) (k2 (copy-sequence "a"))
         (r (rhash-from-alist (list (cons k1 1) (cons "b" 2) (cons k2 3))
                              :test 'equal)))
    (should (equal (rhash-to-alist r) '(("a" . 3) ("b" . 2))))
    (should (eq (car (rhash-keys r)) k1))
    (should (= (rhash-count (rhash-from-plist '(a 1 a 2 b 3))) 2))
    (should-error (rhash-from-plist '(a 1 b)) :type 'wrong-type-argument)
    (should-error (rhash-from-hash-table 5) :type 'wrong-type-argument)
    (when rhash--module
      (should-error (rhash-to-hash-table (make-hash-table)) :type 'wrong-type-argument))))

;; The conversions hand their vectors to `rhash--adopt'; a new table
;; takes them over, compacting duplicates in place.
(ert-deftest rhash-test-adopt-compacts-duplicates ()
  (let* ((pairs '((a . 1) (b . 2) (a . 3) (c . 4) (b . 5) (d . 6)))
         (r (rhash-from-alist pairs))
         (h (make-hash-table :test 'eql)))
    (dolist (p pairs) (puthash (car p) (cdr p) h))
    (should (equal (rhash-to-alist r) (rhash-test--horder h)))
    (should (equal (rhash-to-alist r) '((a . 3) (b . 5) (c . 4) (d . 6))))
    ;; No free places were left behind: new keys go at the end, removed
    ;; places are reused as in the built-in.
    (rhash-put 'e 7 r) (puthash 'e 7 h)
    (rhash-remove 'b r) (remhash 'b h)
    (rhash-put 'f 8 r) (puthash 'f 8 h)
    (should (equal (rhash-to-alist r) (rhash-test--horder h)))
    (should (>= (rhash-size r) (rhash-count r)))
    (let ((n 0)) (rhash-map (lambda (_k _v) (setq n (1+ n))) r)
         (should (= n (rhash-count r))))))

(ert-deftest rhash-test-adopt-into-used-table-and-bad-input ()
  ;; The module's internal `rhash--adopt'.
  (skip-unless rhash--module)
  (let ((r (rhash-make)))
    (rhash-put 'x 0 r)
    ;; A table that has entries gets repeated puts.
    (should (eq (rhash--adopt r (vector 'y 'x) (vector 1 2)) r))
    (should (equal (rhash-to-alist r) '((x . 2) (y . 1))))
    (should-error (rhash--adopt r (vector 1 2) (vector 1))
                  :type 'args-out-of-range)
    (should-error (rhash--adopt 'nope [] []) :type 'wrong-type-argument)
    (should-error (rhash--adopt r 'nope []) :type 'wrong-type-argument)))

(define-hash-table-test 'rhash-test--throwing
  (lambda (a b) (equal a b))
  (lambda (k) (if (eq k 'boom) (throw 'rhash-test--boom k) (sxhash-equal k))))

(ert-deftest rhash-test-adopt-exit-leaves-table-empty ()
  ;; The module's internal `rhash--adopt'.
  (skip-unless rhash--module)
  (let* ((r (rhash-make :test 'rhash-test--throwing))
         (keys (vector 'a 'b 'boom 'c))
         (vals (vector 1 2 3 4)))
    (should (eq (catch 'rhash-test--boom (rhash--adopt r keys vals)) 'boom))
    (should (= (rhash-count r) 0))
    (should (null (rhash-keys r)))
    (should (null (rhash--storage r)))
    (rhash-put 'z 26 r)
    (should (equal (rhash-to-alist r) '((z . 26))))))

(ert-deftest rhash-test-copy ()
  (let ((r (rhash-make :test 'equal)) (h (make-hash-table :test 'equal)))
    (dotimes (i 20) (rhash-put i (* i i) r) (puthash i (* i i) h))
    (dolist (i '(4 9 2)) (rhash-remove i r) (remhash i h))
    (let ((rc (rhash-copy r)) (hc (copy-hash-table h)))
      (should (eq (rhash-test rc) 'equal))
      (should (equal (rhash-test--order rc) (rhash-test--horder hc)))
      ;; The copy keeps the free places: new keys land where the built-in's do.
      (dolist (k '(a b c d)) (rhash-put k k rc) (puthash k k hc))
      (should (equal (rhash-test--order rc) (rhash-test--horder hc)))
      ;; Independent of the original, sharing keys and values.
      (should (= (rhash-count r) 17))
      (should (eq (rhash-get 5 rc) (rhash-get 5 r))))))

(ert-deftest rhash-test-count-size-empty-contains ()
  (let ((r (rhash-make)))
    (should (rhash-empty-p r))
    (should (= (rhash-count r) 0))
    (should (>= (rhash-size r) 0))
    (rhash-put 'a nil r)
    (should (eq (rhash-contains-p 'a r) t))
    (should (eq (rhash-contains-p 'b r) nil))
    (should-not (rhash-empty-p r))
    (dotimes (i 1000) (rhash-put i i r))
    (should (>= (rhash-size r) (rhash-count r)))
    (should (= (rhash-count r) 1001))))

;;;; Keys: the equality matrix of builtin-hash-tables.md section 7

(defun rhash-test--matrix-pairs ()
  "Pairs (FIRST . SECOND) of keys whose equality differs between tests."
  (with-temp-buffer
    (insert "hello world")
    (let ((m1 (copy-marker 3)) (m2 (copy-marker 3)) (m3 (copy-marker 5)))
      (list (cons 1.0 (* 1.0 1)) (cons 0.0 -0.0) (cons -0.0 (- 0.0))
            (cons 1 1.0) (cons 0.0e+NaN (/ 0.0 0.0))
            (cons 0.0e+NaN -0.0e+NaN) (cons 1.0e+NaN 0.0e+NaN)
            (cons (/ 0.0 0.0) (/ 0.0 0.0)) (cons 1.0e+INF 1.0e+INF)
            (cons (1+ most-positive-fixnum) (1+ most-positive-fixnum))
            (cons (expt 2 100) (expt 2 100)) (cons (expt 2 100) (float (expt 2 100)))
            (cons most-positive-fixnum most-positive-fixnum) (cons ?a 97)
            (cons (copy-sequence "abc") (copy-sequence "abc"))
            (cons "abc" (propertize "abc" 'face 'bold))
            (cons (string-to-multibyte "abc") "abc")
            (cons (string-to-multibyte "\377") "\377")
            (cons "é" (encode-coding-string "é" 'utf-8))
            (cons "é" (string-to-unibyte (encode-coding-string "é" 'utf-8)))
            (cons "" (make-string 0 ?a)) (cons "日本" (copy-sequence "日本"))
            (cons "a\0b" (copy-sequence "a\0b"))
            (cons 'foo 'foo) (cons (make-symbol "foo") 'foo) (cons nil nil)
            (cons (list 1 2 (list 3 4)) (list 1 2 (list 3 4)))
            (cons '(1 . 2) '(1 . 2.0)) (cons (list 0.0) (list -0.0))
            (cons (vector 1 "a") (vector 1 "a")) (cons (record 'r 1) (record 'r 1))
            (cons (make-bool-vector 3 t) (make-bool-vector 3 t))
            (cons [] []) (cons m1 m2) (cons m1 m3)
            (cons (make-marker) (make-marker))
            (cons (current-buffer) (current-buffer))
            (cons (lambda (x) x) (lambda (x) x))
            (cons (expt 2 62) (expt 2 62)) (cons (- (expt 2 61)) (- (expt 2 61)))))))

(ert-deftest rhash-test-equality-matrix ()
  (dolist (test '(eq eql equal))
    (let ((i 0))
      (dolist (pair (rhash-test--matrix-pairs))
        (let ((r (rhash-make :test test)) (h (make-hash-table :test test)))
          (rhash-put (cdr pair) 'stored r)
          (puthash (cdr pair) 'stored h)
          (should (equal (list test i (rhash-get (car pair) r 'miss))
                         (list test i (gethash (car pair) h 'miss))))
          (rhash-put (car pair) 'second r)
          (puthash (car pair) 'second h)
          (should (equal (list test i (rhash-count r))
                         (list test i (hash-table-count h)))))
        (setq i (1+ i))))))

(ert-deftest rhash-test-mutated-key-unreachable ()
  (let ((k (list 1 2)) (r (rhash-make :test 'equal)) (h (make-hash-table :test 'equal)))
    (rhash-put k 'v r) (puthash k 'v h)
    (setcar k 99)
    (should (eq (rhash-get k r) (gethash k h)))
    (should (eq (rhash-get (list 99 2) r) (gethash (list 99 2) h)))
    (rhash-put (list 99 2) 'w r) (puthash (list 99 2) 'w h)
    (should (= (rhash-count r) (hash-table-count h)))))

(ert-deftest rhash-test-string-shapes ()
  (let ((r (rhash-make :test 'equal)) (h (make-hash-table :test 'equal)))
    (dotimes (i 3000)
      (let ((k (format "my-package--internal-function-%d" i)))
        (rhash-put k i r) (puthash k i h)))
    (dotimes (i 3000)
      (let ((k (format "my-package--internal-function-%d" i)))
        (should (eql (rhash-get k r) (gethash k h)))))
    (should (= (rhash-count r) 3000))
    (should-not (rhash-get "my-package--internal-function-3000" r))))

;; The module guesses a key's kind after a run of keys of one kind; every
;; kind must still be handled right after such a run.
(ert-deftest rhash-test-key-kind-runs ()
  (with-temp-buffer
    (dolist (test '(eq eql equal))
      (let ((r (rhash-make :test test)) (h (make-hash-table :test test))
            (others (list 'sym 1.5 -0.0 (expt 2 70) (1+ most-positive-fixnum) "str"
                          (copy-sequence "str") "\377" (string-to-multibyte "\377")
                          (list 1) (point-marker) nil ?a)))
        (dotimes (round 3)
          (dotimes (i 100) (rhash-put i round r) (puthash i round h))
          (dolist (k others)
            (should (eq (rhash-get k r 'miss) (gethash k h 'miss)))
            (rhash-put k round r) (puthash k round h))
          (dotimes (i 100)
            (let ((s (format "s%d" i))) (rhash-put s i r) (puthash s i h)))
          (dolist (k (append others (list 5 "s5" (format "s%d" 7))))
            (should (eq (rhash-get k r 'miss) (gethash k h 'miss)))))
        (should (= (rhash-count r) (hash-table-count h)))
        (should (equal (rhash-test--order r) (rhash-test--horder h)))))))

;;;; User-defined tests

(defvar rhash-test--cmp-calls 0)
(defvar rhash-test--hash-calls 0)

(defun rhash-test--ci-equal (a b)
  (setq rhash-test--cmp-calls (1+ rhash-test--cmp-calls))
  (string= (downcase a) (downcase b)))

(defun rhash-test--ci-hash (k)
  (setq rhash-test--hash-calls (1+ rhash-test--hash-calls))
  (sxhash-equal (downcase k)))

(define-hash-table-test 'rhash-test-ci #'rhash-test--ci-equal #'rhash-test--ci-hash)

(ert-deftest rhash-test-user-test ()
  (let ((r (rhash-make :test 'rhash-test-ci))
        (h (make-hash-table :test 'rhash-test-ci))
        calls)
    (should (eq (rhash-test r) 'rhash-test-ci))
    (dolist (side (list (list r #'rhash-put #'rhash-get #'rhash-remove)
                        (list h #'puthash #'gethash #'remhash)))
      (setq rhash-test--cmp-calls 0 rhash-test--hash-calls 0)
      (let ((tb (nth 0 side)) (put (nth 1 side)) (get (nth 2 side)) (rem (nth 3 side))
            (key (copy-sequence "Hello")))
        (funcall put key 1 tb)
        (funcall put "HELLO" 2 tb)
        (funcall put "other" 3 tb)
        (funcall get key tb)
        (funcall get "hello" tb)
        (funcall rem "OTHER" tb)
        (push (list rhash-test--hash-calls rhash-test--cmp-calls
                    (funcall get "hElLo" tb) (funcall get "other" tb))
              calls)))
    ;; Same results and the same number of hash and compare calls.
    (should (equal (nth 0 calls) (nth 1 calls)))))

(ert-deftest rhash-test-user-test-any-hash-object ()
  (define-hash-table-test 'rhash-test-obj #'equal (lambda (k) (format "%s" k)))
  (let ((r (rhash-make :test 'rhash-test-obj)))
    (rhash-put '(1 2) 'a r)
    (rhash-put 1.5 'b r)
    (should (eq (rhash-get (list 1 2) r) 'a))
    (should (eq (rhash-get 1.5 r) 'b))
    (should (= (rhash-count r) 2))))

(ert-deftest rhash-test-user-test-resolved-at-creation ()
  (define-hash-table-test 'rhash-test-late #'equal #'sxhash-equal)
  (let ((r (rhash-make :test 'rhash-test-late)))
    (define-hash-table-test 'rhash-test-late #'eq #'sxhash-eq)
    (rhash-put (list 1) 'x r)
    (should (eq (rhash-get (list 1) r) 'x))))

(ert-deftest rhash-test-user-test-errors-leave-table-unchanged ()
  (define-hash-table-test 'rhash-test-boom
    (lambda (a b) (if (eq b 'bomb) (error "boom %s %s" a b) (equal a b)))
    (lambda (k) (if (eq k 'hash-bomb) (error "hash boom") 0)))
  (let ((r (rhash-make :test 'rhash-test-boom)))
    (rhash-put 'bomb 1 r)
    (should-error (rhash-put 'b 2 r) :type 'error)
    (should (= (rhash-count r) 1))
    (should-error (rhash-get 'hash-bomb r) :type 'error)
    (should (equal (catch 'out
                     (define-hash-table-test 'rhash-test-throw #'equal
                       (lambda (_) (throw 'out 'thrown)))
                     (rhash-put 1 1 (rhash-make :test 'rhash-test-throw)))
                   'thrown))
    (should (eq (rhash-clear r) r))))

(ert-deftest rhash-test-user-test-modifies-table ()
  (let* ((r nil)
         (n 0))
    (define-hash-table-test 'rhash-test-mod #'equal
      (lambda (k) (setq n (1+ n)) (when (= n 5) (rhash-clear r)) (sxhash-equal k)))
    (setq r (rhash-make :test 'rhash-test-mod))
    (let ((err (should-error (dotimes (i 10) (rhash-put i i r)))))
      (should (equal (car err) 'error))
      (should (equal (cadr err) "hash table test modifies table"))
      (should (eq (nth 2 err) r)))
    (should (= (rhash-count r) 4))))

;;;; rhash-map mutation

(ert-deftest rhash-test-map-mutation-like-maphash ()
  (let ((results nil))
    (dolist (side (list (list (rhash-make) #'rhash-put #'rhash-remove #'rhash-map
                              #'rhash-clear #'rhash-test--order)
                        (list (make-hash-table) #'puthash #'remhash #'maphash
                              #'clrhash #'rhash-test--horder)))
      (cl-destructuring-bind (tb put rem mapf clr order) side
        (dotimes (i 6) (funcall put i i tb))
        (let (seen)
          ;; Set the current value, remove odd keys, add keys on the way.
          (funcall mapf (lambda (k v)
                          (push k seen)
                          (funcall put k (* 10 v) tb)
                          (when (cl-oddp k) (funcall rem k tb))
                          (when (< k 3) (funcall put (+ 100 k) k tb)))
                   tb)
          (push (list (nreverse seen) (funcall order tb)) results))
        ;; Clearing inside the walk ends it.
        (let ((calls 0))
          (funcall mapf (lambda (_k _v) (setq calls (1+ calls)) (funcall clr tb)) tb)
          (push calls results))))
    (should (equal (nth 0 results) (nth 2 results)))
    (should (equal (nth 1 results) (nth 3 results)))))

(ert-deftest rhash-test-map-nonlocal-exit ()
  (let ((r (rhash-make)))
    (dotimes (i 10) (rhash-put i i r))
    (should (eq (catch 'stop (rhash-map (lambda (k _) (when (= k 3) (throw 'stop 'ok))) r))
                'ok))
    (should-error (rhash-map (lambda (_k _v) (error "Nope")) r))
    (should (= (rhash-count r) 10))
    (should (equal (rhash-keys r) (number-sequence 0 9)))
    (should (null (rhash-map 'no-such-function (rhash-make))))
    (should-error (rhash-map 'no-such-function r) :type 'void-function)))

;;;; rhash-make arguments

(defun rhash-test--error-of (thunk)
  (condition-case err (progn (funcall thunk) 'no-error) (error err)))

(ert-deftest rhash-test-make-errors-like-make-hash-table ()
  (dolist (args '((:test foo) (:test nil) (:test "eq") (:size -1) (:size 1.5)
                  (:size a) (:test) (:test eq :size) (:foo 1) (test eq)
                  (:test eq :test equal) (nil nil) (:weakness foo)
                  (:size (1 2)) ((1) 2)))
    (should (equal (cons args (rhash-test--error-of (lambda () (apply #'rhash-make args))))
                   (cons args (rhash-test--error-of (lambda () (apply #'make-hash-table args))))))))

(ert-deftest rhash-test-make-accepts ()
  (dolist (args '(() (:test eq) (:test eql) (:test equal) (:size 0) (:size 10)
                  (:size nil) (:weakness nil) (:rehash-size 3.0) (:rehash-threshold 0.9)
                  (:purecopy t)))
    (should (rhash-p (apply #'rhash-make args))))
  ;; Ignored on 30, checked on 28: whatever `make-hash-table' does here.
  (dolist (args '((:rehash-size 0) (:rehash-size x) (:rehash-size)))
    (should (equal (condition-case err (and (rhash-p (apply #'rhash-make args)) 'ok) (error err))
                   (condition-case err (and (apply #'make-hash-table args) 'ok) (error err)))))
  (should (eq (rhash-test (rhash-make)) 'eql))
  (should (eq (rhash-test (rhash-make :test #'equal)) 'equal)))

(ert-deftest rhash-test-weakness-unsupported ()
  (dolist (w '(key value key-or-value key-and-value t))
    (let ((err (should-error (rhash-make :weakness w) :type 'rhash-unsupported)))
      (should (stringp (cadr err)))
      (should (eq (nth 2 err) w))))
  (should (memq 'error (get 'rhash-unsupported 'error-conditions))))

;;;; Wrong types

(ert-deftest rhash-test-wrong-type-argument ()
  (dolist (bad (append (list 1 "s" nil 'sym (list 1) [1] 1.5)
                      ;; Without the module a built-in table is a table.
                      (and rhash--module (list (make-hash-table)))))
    (dolist (f (list (lambda (x) (rhash-get 'k x)) (lambda (x) (rhash-get 'k x 'd))
                     (lambda (x) (rhash-put 'k 'v x)) (lambda (x) (rhash-remove 'k x))
                     (lambda (x) (rhash-clear x)) (lambda (x) (rhash-map #'ignore x))
                     #'rhash-count #'rhash-copy #'rhash-test #'rhash-size #'rhash-weakness
                     #'rhash-keys #'rhash-values (lambda (x) (rhash-contains-p 'k x))
                     #'rhash-empty-p #'rhash-to-alist #'rhash-to-plist))
      (should (equal (rhash-test--error-of (lambda () (funcall f bad)))
                     (list 'wrong-type-argument 'rhash-p bad))))))

(defun rhash-test--declared-arity (f)
  "The (MIN . MAX) of F's argument list in its docstring's usage line."
  (let ((min 0) (max 0) optional)
    (catch 'done
      (dolist (a (help-function-arglist f t))
        (cond ((eq a '&optional) (setq optional t))
              ((eq a '&rest) (setq max 'many) (throw 'done nil))
              (t (setq max (1+ max))
                 (unless optional (setq min (1+ min)))))))
    (cons min max)))

(ert-deftest rhash-test-arity ()
  (skip-unless rhash--module)
  ;; A wrong number of arguments names the function, as a built-in's
  ;; error does (`apply', so that the byte-compiler sees no bad call).
  (let ((r (rhash-make)))
    (should (equal (rhash-test--error-of (lambda () (apply #'rhash-put (list 1 r))))
                   '(wrong-number-of-arguments rhash-put 2)))
    (should (equal (rhash-test--error-of (lambda () (apply #'rhash-get (list 'a r 1 2))))
                   '(wrong-number-of-arguments rhash-get 4)))
    (should (equal (rhash-test--error-of (lambda () (apply #'rhash-merge nil)))
                   '(wrong-number-of-arguments rhash-merge 0)))
    ;; Nothing ran: R is as it was.
    (should (rhash-empty-p r)))
  (should (equal (func-arity #'rhash-make) '(0 . many)))
  ;; Every module function enforces the arity its docstring declares (the
  ;; module registers them as taking any number; `func-arity' says so).
  (let ((n 0))
    (mapatoms
     (lambda (s)
       (when (and (fboundp s)
                  (string-prefix-p "rhash" (symbol-name s))
                  ;; (Not the test suite's foreign module.)
                  (not (string-prefix-p "rhash-test-" (symbol-name s)))
                  (eq (type-of (symbol-function s)) 'module-function))
         (setq n (1+ n))
         (let* ((arity (rhash-test--declared-arity s))
                (min (car arity)) (max (cdr arity)))
           (should (equal (func-arity s) '(0 . many)))
           (when (> min 0)
             (should (equal (rhash-test--error-of
                             (lambda () (apply s (make-list (1- min) nil))))
                            (list 'wrong-number-of-arguments s (1- min)))))
           (when (integerp max)
             (should (equal (rhash-test--error-of
                             (lambda () (apply s (make-list (1+ max) nil))))
                            (list 'wrong-number-of-arguments s (1+ max)))))))))
    (should (> n 30))))

(declare-function help-function-arglist "help" (def &optional preserve-names))
(defvar rhash--module-arities)

(defun rhash-test--arity-error (name nargs)
  "The arity error expected of a call of NAME with NARGS arguments.
With the module the data names the function, as the built-ins' do:
\(wrong-number-of-arguments NAME NARGS).  In the Lisp fallback the
functions are Lisp functions, for which Emacs gives
\(wrong-number-of-arguments (MIN . MAX) NARGS)."
  (list 'wrong-number-of-arguments
        (if rhash--module
            name
          ;; What Emacs gives for a compiled Lisp function of NAME's arity.
          (let ((ref (let ((lexical-binding t))
                       (byte-compile `(lambda ,(help-function-arglist name t) nil)))))
            (nth 1 (rhash-test--error-of
                    (lambda () (apply ref (make-list nargs nil)))))))
        nargs))

(ert-deftest rhash-test-arity-error-names-function ()
  "A wrong number of arguments names the function and the count."
  (let ((tbl (rhash-make)))
    (dolist (call `((rhash-put 1 ,tbl) (rhash-put) (rhash-get 1) (rhash-get 1 ,tbl nil nil)
                    (rhash-remove 1) (rhash-count) (rhash-count ,tbl ,tbl)
                    (rhash-contains-p 1) (rhash-keys) (rhash-union ,tbl)
                    (rhash-get-many) (rhash-merge) (rhash-equal ,tbl)))
      (let ((name (car call)) (args (cdr call)))
        (should (equal (list name (rhash-test--error-of (lambda () (apply name args))))
                       (list name (rhash-test--arity-error name (length args)))))))))

(ert-deftest rhash-test-arity-warnings ()
  "The byte-compiler warns about a wrong number of arguments, as for `puthash'."
  ;; The arities the warnings use are those of the functions (the
  ;; fallback's are Lisp functions; a module function that checks its
  ;; own count may declare (0 . many)).
  (dolist (f rhash--module-arities)
    (when (fboundp (car f))
      (let ((arity (func-arity (car f))))
        (unless (equal arity '(0 . many))
          (should (equal (cons (car f) arity) f))))))
  (let* ((dir (make-temp-file "rhash-arity-" t))
         (file (expand-file-name "rhash-arity-user.el" dir)))
    (unwind-protect
        (progn
          (with-temp-file file
            (insert ";;; rhash-arity-user.el --- -*- lexical-binding: t; -*-\n"
                    "(require 'rhash)\n"
                    "(defun rhash-arity-user-bad (tbl)\n"
                    "  (list (rhash-put 1 tbl) (rhash-get 1 tbl 2 3) (rhash-count)\n"
                    "        (rhash-union tbl)))\n"
                    "(defun rhash-arity-user-good (tbl)\n"
                    "  (list (rhash-put 1 2 tbl) (rhash-get 1 tbl) (rhash-get 1 tbl 0)\n"
                    "        (rhash-merge tbl tbl tbl) (rhash-equal tbl tbl #'eq)))\n"))
          (let ((byte-compile-log-buffer "*rhash-arity-log*")
                (byte-compile-dest-file-function (lambda (_) (concat file "c"))))
            (when (get-buffer byte-compile-log-buffer)
              (kill-buffer byte-compile-log-buffer))
            (let ((inhibit-message t)) (byte-compile-file file))
            (let ((log (with-current-buffer byte-compile-log-buffer (buffer-string))))
              (dolist (w '("rhash-put.? called with 2 arguments"
                           "rhash-get.? called with 4 arguments"
                           "rhash-count.? called with 0 arguments"
                           "rhash-union.? called with 1 argument"))
                (should (string-match-p w log)))
              ;; Nothing about the good calls.
              (should (= 4 (cl-count-if (lambda (l) (string-match-p "called with" l))
                                        (split-string log "\n")))))))
      (delete-directory dir t))))

;;;; Places and map.el

(ert-deftest rhash-test-setf-places ()
  (let ((r (rhash-make :test 'equal)) (h (make-hash-table :test 'equal)) (log nil))
    (should (equal (setf (rhash-get "a" r) 1) (setf (gethash "a" h) 1)))
    (should (equal (cl-incf (rhash-get "n" r 10) 5) (cl-incf (gethash "n" h 10) 5)))
    (should (equal (push 'x (rhash-get "l" r)) (push 'x (gethash "l" h))))
    (should (equal (cl-pushnew 'x (rhash-get "l" r)) (cl-pushnew 'x (gethash "l" h))))
    (should (equal (cl-callf + (rhash-get "a" r) 100) (cl-callf + (gethash "a" h) 100)))
    ;; Each subform once, left to right; DEFAULT evaluated and ignored.
    (setf (rhash-get (progn (push 'key log) "o") (progn (push 'table log) r)
                     (progn (push 'default log) nil))
          (progn (push 'value log) 1))
    (should (equal (nreverse log) '(key table default value)))
    (should (equal (rhash-to-alist r) (rhash-test--horder (progn (puthash "o" 1 h) h))))))

(ert-deftest rhash-test-map-el ()
  (let ((r (rhash-make)) (h (make-hash-table)))
    (dotimes (i 5) (rhash-put i (* i i) r) (puthash i (* i i) h))
    (should (equal (map-elt r 3) (map-elt h 3)))
    (should (equal (map-elt r 30 'd) (map-elt h 30 'd)))
    (should (equal (map-put! r 7 49) (map-put! h 7 49)))
    ;; The reference is spelled out: 27.1's `map-insert' signals
    ;; `map-inplace' on hash tables.
    (if (not rhash--module)
        ;; In the Lisp fallback R is a built-in table: what map.el does there.
        (should (equal (car-safe (rhash-test--error-of (lambda () (map-insert r 8 64) nil)))
                       (car-safe (rhash-test--error-of
                                  (lambda () (map-insert (copy-hash-table h) 8 64) nil)))))
      (let ((ri (map-insert r 8 64)) (hi (copy-hash-table h)))
        (puthash 8 64 hi)
        (should (rhash-p ri))
        (should (equal (rhash-test--order ri) (rhash-test--horder hi)))
        (should-not (rhash-contains-p 8 r))))
    (should (eq (map-delete r 0) r))
    (map-delete h 0)
    (dolist (f (list #'map-keys #'map-values #'map-pairs #'map-length #'map-empty-p
                     #'mapp (lambda (m) (map-apply #'cons m))
                     (lambda (m) (let (acc) (map-do (lambda (k v) (push (list k v) acc)) m) acc))
                     (lambda (m) (map-contains-key m 2)) (lambda (m) (map-contains-key m 99))
                     (lambda (m) (map-into m 'list))
                     (lambda (m) (rhash-test--horder (map-into m 'hash-table)))
                     (lambda (m) (map-filter (lambda (k _) (cl-evenp k)) m))))
      (should (equal (funcall f r) (funcall f h))))
    (should (equal (rhash-test--order (map-copy r)) (rhash-test--horder (map-copy h))))
    (should (equal (cl-incf (map-elt r 2.0 6)) (cl-incf (map-elt h 2.0 6))))
    (setf (map-elt r 'new) 'v)
    (should (eq (rhash-get 'new r) 'v))
    (should (equal (rhash-to-alist (map-into '((a . 1) (b . 2)) 'rhash)) '((a . 1) (b . 2))))
    (should (eq (rhash-test (map-into '((a . 1)) '(rhash :test eq))) 'eq))))

;;;; Printing

(ert-deftest rhash-test-printing ()
  ;; Without the module tables are built-in ones and print as such.
  (skip-unless rhash--module)
  (let ((r (rhash-make :test 'equal)))
    (rhash-put "a" 1 r)
    (should (equal (cl-prin1-to-string r) "#<rhash equal 1>"))
    (when (boundp 'print-unreadable-function)
      (should (equal (prin1-to-string r) "#<rhash equal 1>"))
      (should (equal (format "%S" (list r)) "(#<rhash equal 1>)")))
    ;; Never megabytes of storage: the printed form stays short.
    (dotimes (i 10000) (rhash-put i i r))
    (should (< (length (prin1-to-string r)) 100))))

(provide 'rhash-test)
;;; rhash-test.el ends here
