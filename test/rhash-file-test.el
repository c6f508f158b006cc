;;; rhash-file-test.el --- Plain data, native storage, saving and loading  -*- lexical-binding: t; -*-

;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; `rhash-plain-data-p', `:storage 'native', `rhash-save' and
;; `rhash-load' (CONTRACT.md, "Plain data outside the Lisp heap" and
;; "Saving and loading"; the format is docs/file-format.md).  The
;; golden files in test/data/ were written by the Lisp fallback's writer
;; for the tables `rhash-file-test--golden' builds: every mode must read
;; them back and write the same bytes again.  Damaged files are made
;; here, with a CRC-32 of this file's own (not the writer's).
;;
;; Where the loaded implementation lacks these functions (a module that
;; predates them) the tests are skipped.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)
(require 'rhash-data)

(defvar rhash--module)
(declare-function rhash-save "rhash-module" (table file))
(declare-function rhash-load "rhash-module" (file &rest keyword-args))
(declare-function rhash-storage "rhash-module" (table))
(declare-function rhash-plain-data-p "rhash-module" (object))

(defun rhash-file-test--files-p ()
  "Non-nil if the loaded rhash can save and load tables."
  (and (fboundp 'rhash-save) (fboundp 'rhash-load)))

(defconst rhash-file-test--data
  (let ((root (locate-dominating-file default-directory "Cargo.toml")))
    (and root (file-directory-p (expand-file-name "test/data" root))
         (expand-file-name "test/data/" root)))
  "The directory of the golden files, when the tests run in the source tree.")

(defun rhash-file-test--bytes (file)
  "The bytes of FILE, a unibyte string."
  (with-temp-buffer
    (set-buffer-multibyte nil)
    (insert-file-contents-literally file)
    (buffer-string)))

(defun rhash-file-test--write (file bytes)
  "Write the unibyte string BYTES to FILE as they are."
  (let ((coding-system-for-write 'no-conversion))
    (write-region bytes nil file nil 'silent)))

;;;; Plain data

(defun rhash-file-test--circular ()
  "Circular structures, through a cdr, a car and a vector."
  (let ((a (list 1 2 3)) (b (list 1)) (v (vector 1 nil)))
    (setcdr (cddr a) a)
    (setcar b b)
    (aset v 1 (list v))
    (list a b v)))

(ert-deftest rhash-file-plain-data-p ()
  "What plain data is, and what it is not."
  (skip-unless (fboundp 'rhash-plain-data-p))
  (dolist (x (list nil t 'sym :key 0 -5 most-positive-fixnum (expt 2 80) (- (expt 3 50))
                   1.5 -0.0 1.0e+INF 0.0e+NaN "" "abc" "é" (unibyte-string 255)
                   (string-to-multibyte (unibyte-string 255)) (propertize "p" 'face 'bold)
                   '(1 2 3) '(1 . 2) '((a . 1) (b . 2)) [] [1 [2 [3]] (4 . 5)]
                   (let ((s (list 1))) (list s s))))
    (should (equal (list x (rhash-plain-data-p x)) (list x t))))
  (dolist (x (append (list (make-symbol "u") (make-marker) (current-buffer) (symbol-function 'car)
                           (byte-compile (lambda () 1)) (make-hash-table) (make-bool-vector 2 t)
                           (record 'r 1) (list 1 (make-symbol "u")) (vector (make-marker)))
                     (rhash-file-test--circular)))
    (should (equal (list x (rhash-plain-data-p x)) (list x nil))))
  ;; Nesting: 10000 deep is plain, 10001 is not; a long cdr chain is fine.
  (let ((deep nil))
    (dotimes (_ 10000) (setq deep (list deep)))
    (should (rhash-plain-data-p deep))
    (should-not (rhash-plain-data-p (list deep))))
  (should (rhash-plain-data-p (make-list 100000 1))))

(ert-deftest rhash-file-native-tables ()
  "Native tables: the storage asked for, plain data only."
  (skip-unless (fboundp 'rhash-storage))
  (let ((n (rhash-make :test 'equal :storage 'native))
        (l (rhash-make :test 'equal :storage 'lisp)))
    (should (eq (rhash-storage n) 'native))
    (should (eq (rhash-storage l) 'lisp))
    (should (eq (rhash-storage (rhash-make)) 'lisp))
    (should (eq (rhash-storage (rhash-copy n)) 'native))
    (rhash-put '(a "b" [1.5]) 'v n)
    (should (equal (rhash-get (list 'a "b" (vector 1.5)) n) 'v))
    (let ((m (make-marker)))
      (should (equal (should-error (rhash-put 'k m n))
                     (list 'wrong-type-argument 'rhash-plain-data-p m)))
      (should (equal (should-error (rhash-put (list 1 m) 1 n))
                     (list 'wrong-type-argument 'rhash-plain-data-p m))))
    (let ((c (car (rhash-file-test--circular))))
      (should (eq (car (should-error (rhash-put 'k c n))) 'circular-list)))
    (should (= (rhash-count n) 1))
    ;; eq and eql take only keys whose identity a copy keeps.
    (let ((e (rhash-make :test 'eq :storage 'native)))
      (rhash-put 'a 1 e)
      (rhash-put 7 1 e)
      (should-error (rhash-put "s" 1 e) :type 'rhash-unsupported)
      (should-error (rhash-put 1.5 1 e) :type 'rhash-unsupported))
    (let ((e (rhash-make :test 'eql :storage 'native)))
      (rhash-put 1.5 1 e)
      (rhash-put (expt 2 70) 1 e)
      (should-error (rhash-put '(1) 1 e) :type 'rhash-unsupported))
    ;; Results take A's storage.
    (should (eq (rhash-storage (rhash-union n l)) 'native))
    (should (eq (rhash-storage (rhash-union l n)) 'lisp))
    (define-hash-table-test 'rhash-file-ci #'string= #'sxhash-equal)
    (should-error (rhash-make :test 'rhash-file-ci :storage 'native) :type 'rhash-unsupported)))

;;;; Saving and loading

(defun rhash-file-test--floats ()
  "Floats whose bits must survive: -0.0, infinities, NaNs, a subnormal."
  (list 0.0 -0.0 1.5 -2.25 1.0e+INF -1.0e+INF 0.0e+NaN -0.0e+NaN 123.0e+NaN
        5e-324 2.2250738585072014e-308 1.7976931348623157e+308 0.1))

(defun rhash-file-test--golden ()
  "The tables of the golden files: an alist of (NAME . TABLE)."
  (let ((equal-table (rhash-make :test 'equal :storage 'native))
        (eql-table (rhash-make :test 'eql))
        (eq-table (rhash-make :test 'eq)))
    (cl-loop for k in (list nil t 'sym :key (intern "é") (intern "") 0 -1 1
                            most-positive-fixnum most-negative-fixnum
                            (1+ most-positive-fixnum) (1- most-negative-fixnum)
                            (expt 2 64) (- (expt 3 50))
                            "" "abc" "é€" (unibyte-string 0 255 128)
                            (string-to-multibyte "ascii")
                            (string-to-multibyte (unibyte-string 255))
                            (string #x3fff80 ?a #x10ffff)
                            '(1 2 3) '(1 . 2) '(a (b (c)) . d) [] [1 [2] (3 . 4) "s"])
             for i from 0
             do (rhash-put k (list i (format "v%d" i) (* i 1.5)) equal-table))
    (cl-loop for f in (rhash-file-test--floats) for i from 0
             do (rhash-put f i eql-table))
    ;; A removed key's place is reused by the next new key.
    (rhash-remove 1.5 eql-table)
    (rhash-put (expt 2 100) 'big eql-table)
    (list (cons "golden-empty-eq" eq-table)
          (cons "golden-equal-native" equal-table)
          (cons "golden-eql-floats" eql-table))))

(defun rhash-file-test--same (a b)
  "Non-nil if tables A and B have the same test, storage and entries, in order.
Floats are compared bit for bit (`eql'), the rest with `equal'."
  (and (eq (rhash-test a) (rhash-test b))
       (eq (rhash-storage a) (rhash-storage b))
       (equal (length (rhash-keys a)) (length (rhash-keys b)))
       (cl-every (lambda (x y) (and (equal (car x) (car y)) (equal (cdr x) (cdr y))
                                    (or (not (floatp (car x))) (eql (car x) (car y)))
                                    (eq (multibyte-string-p (car x))
                                        (multibyte-string-p (car y)))))
                 (rhash-to-alist a) (rhash-to-alist b))))

(ert-deftest rhash-file-round-trip ()
  "What is saved loads back: test, storage, entries and their order."
  (skip-unless (rhash-file-test--files-p))
  (rhash-data-with-dir dir
    (dolist (g (rhash-file-test--golden))
      (let ((file (expand-file-name (concat (car g) ".rht") dir)))
        (should (equal (rhash-save (cdr g) file) file))
        (let ((back (rhash-load file)))
          (should (rhash-file-test--same (cdr g) back))
          ;; Saved again: the same bytes.
          (rhash-save back (concat file "2"))
          (should (equal (rhash-file-test--bytes file)
                         (rhash-file-test--bytes (concat file "2")))))
        ;; :storage overrides the saved storage.
        (should (eq (rhash-storage (rhash-load file :storage 'lisp)) 'lisp))
        (should (eq (rhash-storage (rhash-load file :storage 'native)) 'native))))
    ;; Float bits, one by one.
    (dolist (f (rhash-file-test--floats))
      (let ((tb (rhash-make :test 'equal)) (file (expand-file-name "f.rht" dir)))
        (rhash-put 'f f tb)
        (rhash-save tb file)
        (let ((back (rhash-get 'f (rhash-load file))))
          (should (equal (list f (format "%S" back)) (list f (format "%S" f))))
          (should (eql back f)))))
    ;; A built-in hash table can be saved too.
    (let ((h (make-hash-table :test 'equal)) (file (expand-file-name "h.rht" dir)))
      (puthash "a" 1 h)
      (rhash-save h file)
      (should (equal (rhash-to-alist (rhash-load file)) '(("a" . 1)))))))

(ert-deftest rhash-file-golden ()
  "The golden files load as the tables they hold and are written again byte for byte."
  (skip-unless (rhash-file-test--files-p))
  (skip-unless rhash-file-test--data)
  (rhash-data-with-dir dir
    (dolist (g (rhash-file-test--golden))
      (let ((golden (expand-file-name (concat (car g) ".rht") rhash-file-test--data))
            (file (expand-file-name (concat (car g) ".rht") dir)))
        (should (file-exists-p golden))
        (should (rhash-file-test--same (rhash-load golden) (cdr g)))
        (rhash-save (cdr g) file)
        (should (equal (list (car g) (rhash-file-test--bytes file))
                       (list (car g) (rhash-file-test--bytes golden))))))))

(ert-deftest rhash-file-save-refuses-non-plain ()
  "Non-plain data: the error, FILE untouched, no temporary file left."
  (skip-unless (rhash-file-test--files-p))
  (rhash-data-with-dir dir
    (let ((file (expand-file-name "t.rht" dir))
          (good (rhash-from-alist '((a . 1))))
          (bad (rhash-make)))
      (rhash-save good file)
      (set-file-modes file #o640)
      (let ((before (rhash-file-test--bytes file)) (m (make-marker)))
        (rhash-put 'k (list 1 m) bad)
        (should (equal (should-error (rhash-save bad file))
                       (list 'wrong-type-argument 'rhash-plain-data-p m)))
        (should (equal (rhash-file-test--bytes file) before))
        (should (equal (directory-files dir nil "\\`[^.]\\|\\`\\.[^.]") '("t.rht"))))
      ;; Saving over it keeps its permissions.
      (rhash-save (rhash-from-alist '((b . 2))) file)
      (should (= (file-modes file) #o640))
      (should (equal (rhash-to-alist (rhash-load file)) '((b . 2))))
      (should (equal (directory-files dir nil "\\`[^.]\\|\\`\\.[^.]") '("t.rht"))))))

;;;; Damaged files

(defun rhash-file-test--crc32 (bytes)
  "CRC-32 of the unibyte string BYTES, bit by bit (no table)."
  (let ((crc #xFFFFFFFF))
    (dotimes (i (length bytes))
      (setq crc (logxor crc (aref bytes i)))
      (dotimes (_ 8)
        (setq crc (if (= 1 (logand crc 1)) (logxor (ash crc -1) #xEDB88320) (ash crc -1)))))
    (logxor crc #xFFFFFFFF)))

(defun rhash-file-test--le (n size)
  "N as SIZE bytes, little-endian, a unibyte string."
  (apply #'unibyte-string (cl-loop repeat size collect (logand n 255)
                                   do (setq n (ash n -8)))))

(defun rhash-file-test--file (body count &optional version flags)
  "The bytes of a file with BODY (a unibyte string) of COUNT entries.
VERSION and FLAGS default to 1 and 0; the checksum is right."
  (let ((head (concat (unibyte-string #x89 ?R ?H ?T ?\r ?\n #x1a ?\n)
                      (rhash-file-test--le (or version 1) 4)
                      (rhash-file-test--le (or flags 0) 4)
                      (rhash-file-test--le count 8)
                      (rhash-file-test--le (length body) 8)
                      body)))
    (concat head (rhash-file-test--le (rhash-file-test--crc32 head) 4))))

(ert-deftest rhash-file-crc32-check-value ()
  "The CRC-32 of these tests is zlib's (its check value)."
  (should (= (rhash-file-test--crc32 "123456789") #xCBF43926)))

(ert-deftest rhash-file-damaged ()
  "Damaged files signal `rhash-file-error' naming the reason and the file."
  (skip-unless (rhash-file-test--files-p))
  (rhash-data-with-dir dir
    (let* ((file (expand-file-name "d.rht" dir))
           ;; storage lisp, test `equal', then 1 => "a".
           (body (unibyte-string 0 2 5 ?e ?q ?u ?a ?l 4 2 7 1 ?a))
           (good (rhash-file-test--file body 1))
           (cases
            `(("not an rhash table file" . "hello world, no table here at all!!!")
              ("not an rhash table file" . ,(substring good 0 5))
              ("truncated" . ,(substring good 0 10))
              ("unknown format version 2" . ,(rhash-file-test--file body 1 2))
              ("truncated" . ,(substring good 0 30))
              ("unsupported flags" . ,(rhash-file-test--file body 1 1 4))
              ("truncated" . ,(substring good 0 -1))
              ("trailing data" . ,(concat good "x"))
              ("checksum mismatch" . ,(let ((b (copy-sequence good)))
                                        (aset b 40 (logxor (aref b 40) 1)) b))
              ("corrupt: entry count" . ,(rhash-file-test--file body 7))
              ("corrupt: " . ,(rhash-file-test--file (unibyte-string 0 2 5 ?e ?q ?u ?a ?l 4 2 99) 1))
              ("corrupt: " . ,(rhash-file-test--file (concat body (unibyte-string 0)) 1))
              ;; A list claiming more elements than there are bytes.
              ("corrupt: " . ,(rhash-file-test--file
                               (unibyte-string 0 2 5 ?e ?q ?u ?a ?l 9 #xff #xff #xff #x7f 0 0) 1))
              ;; An overlong varint, a fixnum written as a bignum.
              ("corrupt: " . ,(rhash-file-test--file
                               (unibyte-string 0 2 5 ?e ?q ?u ?a ?l 4 #x82 0 0) 1))
              ("corrupt: " . ,(rhash-file-test--file
                               (unibyte-string 0 2 5 ?e ?q ?u ?a ?l 5 0 1 1 0) 1)))))
      (should (equal (rhash-get 1 (progn (rhash-file-test--write file good) (rhash-load file)))
                     "a"))
      (dolist (c cases)
        (rhash-file-test--write file (cdr c))
        (let ((err (should-error (rhash-load file) :type 'rhash-file-error)))
          (should (equal (list (car c) (string-prefix-p (car c) (nth 2 err)))
                         (list (car c) t)))
          (should (member file (cdr err)))
          (should (memq 'file-error (get (car err) 'error-conditions)))))
      (should-error (rhash-load (expand-file-name "missing.rht" dir)) :type 'file-missing))))

(provide 'rhash-file-test)
;;; rhash-file-test.el ends here
