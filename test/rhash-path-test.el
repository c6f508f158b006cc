;;; rhash-path-test.el --- The two access paths  -*- lexical-binding: t; -*-

;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; rhash talks to Emacs through the official module API or, when its
;; load-time self-test passes, reads Lisp objects directly (see
;; docs/design.md, "The direct path").  `make test' runs every suite
;; twice per Emacs: once as loaded (the direct path must then be on,
;; unless RHASH_EXPECT_DIRECT=0) and once under RHASH_NO_DIRECT=1.
;; These tests check that the path in use is the expected one, that a
;; failed self-test check selects the official path and that it works,
;; and the kinds of keys whose exactness hangs on the path.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)

(declare-function rhash-module-info "rhash-module" ())
(defvar symbols-with-pos-enabled)       ; Emacs 29+

(defun rhash-path--expect-direct ()
  "Non-nil if this run must be on the direct path."
  (not (or (equal (getenv "RHASH_NO_DIRECT") "1")
           (equal (getenv "RHASH_NO_MODULE") "1")
           (equal (getenv "RHASH_EXPECT_DIRECT") "0")
           (getenv "RHASH_DIRECT_FAIL"))))

(ert-deftest rhash-path-expected ()
  "The path in use is the one this run asked for, and says why.
Under RHASH_NO_MODULE=1 that is the Lisp fallback, on built-in tables."
  (let ((info (rhash-module-info))
        (no-module (equal (getenv "RHASH_NO_MODULE") "1")))
    (should (equal (plist-get info :version) rhash--version))
    (should (eq (plist-get info :module) (not no-module)))
    (should (eq rhash--module (not no-module)))
    (should (eq (hash-table-p (rhash-make)) no-module))
    (if no-module
        (should (string-match-p "RHASH_NO_MODULE" (plist-get info :reason)))
      (should (null (plist-get info :reason))))
    (if (rhash-path--expect-direct)
        (progn (should (eq (plist-get info :direct) t))
               (should (null (plist-get info :direct-reason))))
      (should (null (plist-get info :direct)))
      (should (stringp (plist-get info :direct-reason))))
    (when (equal (getenv "RHASH_NO_DIRECT") "1")
      (should (string-match-p "RHASH_NO_DIRECT" (plist-get info :direct-reason))))))

(defconst rhash-path--checks
  '("64-bit" "mps" "box" "fixnum" "symbol" "vector" "cons" "user-ptr" "float"
    "bignum" "string" "symbol-with-pos" "return")
  "Every check of the self-test, by name.")

(defconst rhash-path--child-program
  '(let* ((info (rhash-module-info))
          (keys (list 1 -7 most-positive-fixnum (1+ most-positive-fixnum) 1.5 -0.0 0.0
                      "abc" "é" (string-to-unibyte "abc") (unibyte-string 255)
                      (string-to-multibyte (unibyte-string 255)) 'sym nil t
                      (make-symbol "u") '(1 2) [1 2]))
          (ok t))
     (dolist (test '(eq eql equal))
       (let ((r (rhash-make :test test)) (h (make-hash-table :test test)) (i 0))
         (dolist (k keys) (rhash-put k i r) (puthash k i h) (setq i (1+ i)))
         (dolist (k (append keys (mapcar (lambda (k) (if (sequencep k) (copy-sequence k) k)) keys)))
           (unless (equal (rhash-get k r 'none) (gethash k h 'none)) (setq ok nil)))
         (unless (= (rhash-count r) (hash-table-count h)) (setq ok nil))))
     (princ (format "%S" (list (plist-get info :direct) (plist-get info :direct-reason) ok))))
  "Run in a child Emacs: report the path and whether lookups match built-ins.")

(defun rhash-path--child (env)
  "Run `rhash-path--child-program' in a child Emacs with ENV added.
Return what it printed, read."
  (let ((process-environment (append env '("RHASH_NO_MODULE=0") process-environment))
        (lib (file-name-directory (locate-library "rhash")))
        (mod (file-name-directory (locate-library "rhash-module.so"))))
    (with-temp-buffer
      (let ((status (call-process (expand-file-name invocation-name invocation-directory)
                                  nil t nil "-Q" "--batch" "-L" lib "-L" mod "-l" "rhash"
                                  "--eval" (format "%S" rhash-path--child-program))))
        (unless (eq status 0) (error "Child Emacs failed: %s" (buffer-string)))
        (goto-char (point-max))
        (backward-sexp)
        (read (current-buffer))))))

(ert-deftest rhash-path-failed-check-falls-back ()
  "Each failed self-test check selects the official path, which works.
The children load the module whatever this run's mode: this runs in
the direct mode only."
  (skip-unless (rhash-path--expect-direct))
  (dolist (check rhash-path--checks)
    (let ((r (rhash-path--child (list (concat "RHASH_DIRECT_FAIL=" check)
                                      "RHASH_NO_DIRECT="))))
      (should (equal (list check (nth 0 r) (nth 2 r)) (list check nil t)))
      (should (string-match-p (regexp-quote (format "`%s'" check)) (nth 1 r)))))
  ;; And without a fault the child takes the direct path here, as we do.
  (when (rhash-path--expect-direct)
    (should (equal (rhash-path--child '("RHASH_NO_DIRECT=" "RHASH_DIRECT_FAIL="))
                   '(t nil t)))))

(ert-deftest rhash-path-strings-equal-exactly ()
  "Strings are `equal' keys by bytes and character counts, on both paths."
  (let* ((uni-e (string-to-unibyte (encode-coding-string "é" 'utf-8)))
         (keys (list "abc" (string-to-unibyte "abc") "é" uni-e
                     (unibyte-string 255) (string-to-multibyte (unibyte-string 255))
                     (propertize "abc" 'face 'bold) "" (string-to-unibyte "")
                     (string #x3fff80) (string #x10ffff) (make-string 300 ?x)
                     (concat (make-string 300 ?x) "é") "a\0b"))
         (r (rhash-make :test 'equal))
         (h (make-hash-table :test 'equal)))
    (cl-loop for k in keys for i from 0 do (rhash-put k i r) (puthash k i h))
    (should (= (rhash-count r) (hash-table-count h)))
    (dolist (k keys)
      (should (equal (rhash-get (copy-sequence k) r 'none) (gethash (copy-sequence k) h 'none))))
    (should (equal (rhash-to-alist r)
                   (let (al) (maphash (lambda (k v) (push (cons k v) al)) h) (nreverse al))))))

(ert-deftest rhash-path-symbols-with-position ()
  "A symbol with position finds its bare symbol while enabled, as built-ins."
  (skip-unless (fboundp 'position-symbol))
  (dolist (test '(eq eql equal))
    (let* ((r (rhash-make :test test))
           (h (make-hash-table :test test))
           (position-symbol (intern "position-symbol")) ; not in Emacs 28
           (sp (funcall position-symbol 'rhash-path-sym 12))
           (sp2 (funcall position-symbol 'rhash-path-sym 40)))
      (rhash-put 'rhash-path-sym 1 r)
      (puthash 'rhash-path-sym 1 h)
      (dolist (enabled '(nil t))
        (let ((symbols-with-pos-enabled enabled))
          (dolist (k (list sp sp2 'rhash-path-sym))
            (should (equal (list test enabled (rhash-get k r 'none))
                           (list test enabled (gethash k h 'none)))))))
      ;; Stored with position while enabled, then looked up both ways.
      (let ((symbols-with-pos-enabled t))
        (rhash-put sp 2 r) (puthash sp 2 h))
      (dolist (enabled '(nil t))
        (let ((symbols-with-pos-enabled enabled))
          (dolist (k (list sp sp2 'rhash-path-sym))
            (should (equal (list test enabled (rhash-get k r 'none))
                           (list test enabled (gethash k h 'none))))))))))

(ert-deftest rhash-path-numbers ()
  "Fixnum limits, bignums and floats, under each test, as built-ins."
  (let ((keys (list 0 -1 most-positive-fixnum most-negative-fixnum
                    (1+ most-positive-fixnum) (1- most-negative-fixnum)
                    (expt 2 63) (- (expt 2 63)) (expt 2 64) (expt 3 90)
                    0.0 -0.0 1.0 1.0e+INF -1.0e+INF 0.0e+NaN (- 0.0e+NaN))))
    (dolist (test '(eq eql equal))
      (let ((r (rhash-make :test test)) (h (make-hash-table :test test)))
        (cl-loop for k in keys for i from 0 do (rhash-put k i r) (puthash k i h))
        (should (= (rhash-count r) (hash-table-count h)))
        (dolist (k (append keys (mapcar (lambda (k) (if (integerp k) (+ k 0) (* k 1.0))) keys)))
          (should (equal (list test k (rhash-get k r 'none))
                         (list test k (gethash k h 'none)))))))))

(provide 'rhash-path-test)
;;; rhash-path-test.el ends here
