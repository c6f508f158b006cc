;;; rhash-assert.el --- A small group run under --module-assertions  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by test/run-ert.sh in its own `emacs --module-assertions'
;; process, which aborts Emacs on any misuse of module values (a local
;; value used after its call, a freed global reference).  Assertions make
;; every value access scan all live values, so sizes stay small.

;;; Code:

(require 'ert)
(require 'rhash)

(ert-deftest rhash-assert-module-assertions-on ()
  ;; Guard: this group is only useful under the flag, which Emacs removes
  ;; from `command-line-args'; test/run-ert.sh says so in the environment.
  (should (equal (getenv "RHASH_MODULE_ASSERTIONS") "1")))

(ert-deftest rhash-assert-operations ()
  (dolist (test '(eq eql equal))
    (let ((r (rhash-make :test test)))
      (dotimes (i 200)
        (rhash-put (if (eq test 'equal) (format "k%d" i) i) (list i) r))
      (dotimes (i 100)
        (rhash-remove (if (eq test 'equal) (format "k%d" (* 2 i)) (* 2 i)) r))
      (should (= (rhash-count r) 100))
      (should (equal (rhash-get (if (eq test 'equal) "k1" 1) r) '(1)))
      (should (= (length (rhash-keys r)) 100))
      (should (= (length (rhash-to-alist r)) 100))
      (let ((c (rhash-copy r)) (n 0))
        (rhash-map (lambda (k _) (setq n (1+ n)) (rhash-remove k c)) r)
        (should (= n 100))
        (should (rhash-empty-p c)))
      ;; The conversions through `rhash--adopt', duplicates included.
      (let* ((alist (append (rhash-to-alist r) (rhash-to-alist r)))
             (a (rhash-from-alist alist :test test))
             (p (rhash-from-plist (rhash-to-plist r) :test test)))
        (should (equal (rhash-to-alist a) (rhash-to-alist r)))
        (should (equal (rhash-to-alist p) (rhash-to-alist r)))
        (rhash-put 'new 1 a)
        (should (= (rhash-count a) 101)))
      (rhash-clear r)
      (should (rhash-empty-p r)))))

(ert-deftest rhash-assert-native-and-files ()
  ;; Native storage (encode, decode, copy, walk, bulk) and a file round
  ;; trip, every value through the module API's checks.
  (let ((n (rhash-make :test 'equal :storage 'native))
        (file (make-temp-file "rhash-assert" nil ".rht")))
    (unwind-protect
        (progn
          (dotimes (i 200)
            (rhash-put (format "k%d" i) (list i (* i 1.5) (vector 'sym "s" (expt 2 70))) n))
          (dotimes (i 50) (rhash-remove (format "k%d" (* 3 i)) n))
          (should (= (rhash-count n) 150))
          (should (equal (rhash-get "k1" n) (list 1 1.5 (vector 'sym "s" (expt 2 70)))))
          (should (= (length (rhash-to-alist (rhash-copy n))) 150))
          (let ((seen 0))
            (rhash-map (lambda (k _) (setq seen (1+ seen)) (rhash-remove k n)) (rhash-copy n))
            (should (= seen 150)))
          (should-error (rhash-put (make-marker) 1 n) :type 'wrong-type-argument)
          (rhash-merge n (rhash-from-alist '(("x" . 1)) :test 'equal))
          (rhash-compact n)
          (rhash-save n file)
          (should (equal (rhash-to-alist (rhash-load file)) (rhash-to-alist n)))
          (should (equal (rhash-to-alist (rhash-load file :storage 'lisp)) (rhash-to-alist n)))
          (should (rhash-plain-data-p (rhash-to-alist n))))
      (delete-file file))))

(ert-deftest rhash-assert-errors-and-exits ()
  (should-error (rhash-get 1 2) :type 'wrong-type-argument)
  (should-error (rhash-make :weakness 'key) :type 'rhash-unsupported)
  (let ((r (rhash-make)))
    (rhash-put 1 2 r)
    (should (eq (catch 'x (rhash-map (lambda (_k _v) (throw 'x 'thrown)) r)) 'thrown))
    (define-hash-table-test 'rhash-assert-t #'equal (lambda (_) (error "Boom")))
    (should-error (rhash-put 1 1 (rhash-make :test 'rhash-assert-t)))))

(ert-deftest rhash-assert-bulk-operations ()
  ;; Every bulk function once, on rhash and built-in tables.
  (dolist (test '(eq eql equal))
    (let ((a (rhash-make :test test)) (b (rhash-make :test test)) (h (make-hash-table :test test)))
      (dotimes (i 60)
        (rhash-put (format "k%d" i) i a)
        (rhash-put (format "k%d" (* 2 i)) i b)
        (puthash (format "k%d" (* 3 i)) i h))
      (dotimes (i 20) (rhash-remove (format "k%d" (* 3 i)) a))
      (should (= (length (rhash-get-many (rhash-keys b) a)) 60))
      (should (vectorp (rhash-get-many (vconcat (rhash-keys b)) h)))
      (should (rhash-p (rhash-union a b)))
      (should (rhash-p (rhash-union a h)))
      (should (rhash-p (rhash-intersection h b)))
      (should (rhash-p (rhash-difference a b)))
      (should-not (rhash-equal a b))
      (should (rhash-equal a (rhash-copy a)))
      (rhash-merge-with #'+ a b h)
      (rhash-merge a b h)
      (rhash-put-many '(x y) [1 2] a)
      (rhash-tally-into (rhash-keys b) b)
      (should (= (rhash-count (rhash-tally (append (rhash-keys a) (rhash-keys a)) :test test))
                 (rhash-count a)))
      (should (= (length (rhash-uniq (append (rhash-keys a) (rhash-keys a)) test)) (rhash-count a)))
      (rhash-compact a)
      (should (= (rhash-size a) (rhash-count a)))
      (should (plist-get (rhash-stats a) :bytes)))))

(ert-deftest rhash-assert-release-after-gc ()
  ;; Dropped tables queue their global references; the next call frees
  ;; them.  A wrong free would abort this process.
  (dotimes (_ 50)
    (let ((r (rhash-make :test 'equal)))
      (rhash-put "k" (make-string 10 ?x) r)))
  (garbage-collect)
  (rhash-make)
  (should (= (car (rhash--release-stats)) 0)))

(provide 'rhash-assert)
;;; rhash-assert.el ends here
