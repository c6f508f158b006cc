;;; demo.el --- Show rhash at work (make demo)  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by `make demo' in batch Emacs: each step prints the form and its
;; result, next to the built-in hash table doing the same.

;;; Code:

(require 'rhash)
(require 'map)
(require 'cl-print)

(defmacro demo (form)
  "Print FORM and its value."
  `(let ((value ,form))
     (princ (format "  %-50s => %s\n" (cl-prin1-to-string ',form)
                    (cl-prin1-to-string value)))
     value))

(princ (format "rhash demo on GNU Emacs %s\n\n" emacs-version))
(defvar tbl (demo (rhash-make :test 'equal)))
(demo (rhash-put "apple" 3 tbl))
(demo (rhash-put "banana" 5 tbl))
(demo (rhash-put '(list key) 'any-lisp-object tbl))
(demo (rhash-get "apple" tbl))
(demo (rhash-get "cherry" tbl 'none))
(demo (cl-incf (rhash-get "apple" tbl 0) 10))
(demo (push 'x (rhash-get "pushed" tbl)))
(demo (rhash-remove "banana" tbl))
(demo (rhash-put "date" 7 tbl))
(princ "  ;; the freed place is reused, as in built-in tables:\n")
(demo (rhash-keys tbl))
(demo (rhash-to-alist tbl))
(demo (map-elt tbl "date"))
(demo (rhash-count tbl))
(demo (condition-case err (rhash-get "k" (make-hash-table)) (error err)))
(demo (condition-case err (rhash-make :weakness 'key) (error err)))

(princ "\nA user-defined test (case-insensitive keys):\n")
(define-hash-table-test 'ci (lambda (a b) (string= (downcase a) (downcase b)))
  (lambda (s) (sxhash-equal (downcase s))))
(defvar ci (demo (rhash-make :test 'ci)))
(demo (rhash-put "Hello" 1 ci))
(demo (rhash-get "HELLO" ci))

(princ "\nSame operations on a built-in table give the same order:\n")
(let ((h (make-hash-table :test 'equal)) (r (rhash-make :test 'equal)))
  (dolist (k '("a" "b" "c" "d")) (puthash k t h) (rhash-put k t r))
  (remhash "b" h) (rhash-remove "b" r)
  (puthash "e" t h) (rhash-put "e" t r)
  (princ (format "  built-in: %S\n  rhash:    %S\n"
                 (let (ks) (maphash (lambda (k _) (push k ks)) h) (nreverse ks))
                 (rhash-keys r))))

(princ "\nStrings sharing a long prefix (slow to hash in Emacs 28):\n")
(let ((keys (mapcar (lambda (i) (format "my-package--internal-function-%d" i))
                    (number-sequence 1 20000)))
      (h (make-hash-table :test 'equal)) (r (rhash-make :test 'equal)))
  (garbage-collect)
  (let ((tb (car (benchmark-run 1 (dolist (k keys) (puthash k t h)))))
        (tr (car (benchmark-run 1 (dolist (k keys) (rhash-put k t r))))))
    (princ (format "  20000 puts: built-in %.1f ms, rhash %.1f ms: rhash %.1fx %s\n"
                   (* 1000 tb) (* 1000 tr) (if (> tb tr) (/ tb tr) (/ tr tb))
                   (if (> tb tr) "faster" "slower")))))
(princ (format "\nPrinted form: %s\n" (cl-prin1-to-string tbl)))

(princ "\nPlain data outside the Lisp heap (:storage 'native), saved and loaded:\n")
(defvar idx (demo (rhash-make :test 'equal :storage 'native)))
(demo (rhash-put "id-1" '(:file "~/org/a.org" :pos 42) idx))
(demo (rhash-get "id-1" idx))
(demo (rhash-plain-data-p (current-buffer)))
(let ((n 200000)
      (native (rhash-make :test 'equal :storage 'native))
      (builtin (make-hash-table :test 'equal))
      (file (make-temp-file "rhash-demo" nil ".rht")))
  (garbage-collect)
  (let ((empty (car (benchmark-run 1 (garbage-collect)))))
    (dotimes (i n) (rhash-put (format "key-%d" i) (format "value-%d" i) native))
    (garbage-collect)
    (let ((gc-native (car (benchmark-run 1 (garbage-collect)))))
      (dotimes (i n) (puthash (format "key-%d" i) (format "value-%d" i) builtin))
      (garbage-collect)
      (let ((gc-builtin (car (benchmark-run 1 (garbage-collect)))))
        (princ (format "  a full GC: nothing %.1f ms, %d entries built-in %.1f ms, native %.1f ms\n"
                       (* 1000 empty) n (* 1000 gc-builtin) (* 1000 gc-native))))))
  (let ((saved (car (benchmark-run 1 (rhash-save native file))))
        (back nil))
    (let ((loaded (car (benchmark-run 1 (setq back (rhash-load file))))))
      (princ (format "  rhash-save %.0f ms, rhash-load %.0f ms (%d entries, %s storage, %.1f MB)\n"
                     (* 1000 saved) (* 1000 loaded) (rhash-count back) (rhash-storage back)
                     (/ (file-attribute-size (file-attributes file)) 1e6)))))
  (delete-file file))
;;; demo.el ends here
