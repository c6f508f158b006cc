;;; rhash-install-test.el --- Loading, building and unloading the module  -*- lexical-binding: t; -*-

;;; Commentary:

;; How rhash.el finds, builds, checks and unloads its module (issue 11).
;; Each test runs a child Emacs (the one running the tests) on a private
;; copy of rhash.el, so that a missing, stale or unloaded module never
;; touches this process.  "Building" uses a fake cargo, a shell script
;; that copies the module built by `make' where cargo would put it: the
;; tests check what rhash.el does around cargo, not cargo.

;;; Code:

(require 'ert)
(require 'rhash)
(require 'lisp-mnt)

(defconst rhash-install-test--el (locate-library "rhash.el")
  "The rhash.el under test (its source).")

(defconst rhash-install-test--module
  (locate-library (concat "rhash-module" module-file-suffix) t)
  "The module built by `make'.")

(defconst rhash-install-test--root
  (locate-dominating-file default-directory "Cargo.toml")
  "The source tree (with Cargo.toml), when the tests run in it.")

(defun rhash-install-test--emacs ()
  "The Emacs running the tests, for child processes."
  (expand-file-name invocation-name invocation-directory))

(defun rhash-install-test--copy (dir &optional version)
  "Copy rhash.el into DIR; with VERSION, make it claim that version."
  (let ((file (expand-file-name "rhash.el" dir)))
    (copy-file rhash-install-test--el file t)
    (when version
      (with-temp-file file
        (insert-file-contents file)
        (goto-char (point-min))
        (should (re-search-forward "(defconst rhash--version \"\\([^\"]+\\)\"" nil t))
        (replace-match version t t nil 1)))
    file))

(defun rhash-install-test--fake-cargo (bin)
  "Write a fake cargo into directory BIN; return BIN.
It copies the real module to where `cargo build --release' puts the
library, and logs its arguments to cargo.log beside it."
  (make-directory bin t)
  (let ((cargo (expand-file-name "cargo" bin)))
    (with-temp-file cargo
      (insert "#!/bin/sh\n"
              "echo \"$@\" >> " (shell-quote-argument (expand-file-name "cargo.log" bin)) "\n"
              "mkdir -p target/release\n"
              "cp " (shell-quote-argument rhash-install-test--module)
              " target/release/" (rhash--cargo-output) "\n"))
    (set-file-modes cargo #o755))
  bin)

(defun rhash-install-test--run (dir form &optional bin)
  "Run FORM in a child batch Emacs with only DIR added to `load-path'.
HOME is DIR/home.  With BIN, put that directory first on PATH.
Return (STATUS . OUTPUT), OUTPUT being stdout and stderr together."
  (make-directory (expand-file-name "home" dir) t)
  (let ((process-environment
         (append (list (concat "HOME=" (expand-file-name "home" dir)))
                 (when bin
                   (list (concat "PATH=" bin path-separator (getenv "PATH"))))
                 process-environment)))
    (with-temp-buffer
      (let ((status (call-process (rhash-install-test--emacs) nil t nil
                                  "-Q" "--batch" "-L" dir
                                  "--eval" (prin1-to-string form))))
        (cons status (buffer-string))))))

(defmacro rhash-install-test--with-dir (var &rest body)
  "Bind VAR to a fresh temporary directory around BODY, then delete it."
  (declare (indent 1))
  `(let ((,var (file-name-as-directory (make-temp-file "rhash-install-" t))))
     (unwind-protect (progn ,@body)
       (delete-directory ,var t))))

(defconst rhash-install-test--report
  '(condition-case err
       (progn (require 'rhash)
              (princ (format "loaded %s" (plist-get (rhash-module-info) :version))))
     (error (princ (format "error: %s" (error-message-string err))))))

(ert-deftest rhash-install-module-info ()
  "The module reports its version, rhash.el's, and the direct path status."
  (let ((info (rhash-module-info)))
    (should (equal (plist-get info :version) rhash--version))
    (should (memq (plist-get info :direct) '(nil t)))
    (unless (plist-get info :direct)
      (should (stringp (plist-get info :direct-reason))))))

(ert-deftest rhash-install-versions-agree ()
  "Cargo.toml, rhash.el's Version header and `rhash--version' agree."
  (skip-unless rhash-install-test--root)
  (let ((header (with-temp-buffer
                  (insert-file-contents rhash-install-test--el)
                  (lm-header "version")))
        (cargo (with-temp-buffer
                 (insert-file-contents
                  (expand-file-name "Cargo.toml" rhash-install-test--root))
                 (and (re-search-forward "^version = \"\\([^\"]+\\)\"" nil t)
                      (match-string 1)))))
    (should (equal header rhash--version))
    (should (equal cargo rhash--version))))

(ert-deftest rhash-install-missing-batch-error ()
  "Batch Emacs, option nil: a missing module is an error.
The error says how to build the module."
  (rhash-install-test--with-dir dir
    (rhash-install-test--copy dir)
    (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
    (let* ((r (rhash-install-test--run dir rhash-install-test--report))
           (out (cdr r)))
      (should (string-match-p "^error: The rhash module .*rhash-module.* is missing" out))
      (should (string-match-p "rhash-module-compile" out))
      (should (string-match-p "build --release" out))
      (should (string-match-p (regexp-quote (directory-file-name (abbreviate-file-name dir)))
                              out))
      (should (string-match-p "rhash-module-always-compile" out))
      ;; Nothing was built.
      (should-not (file-exists-p (rhash-install-test--target dir))))))

(defun rhash-install-test--target (dir)
  "The module file rhash.el in DIR loads."
  (expand-file-name (concat "rhash-module" module-file-suffix) dir))

(ert-deftest rhash-install-missing-no-sources ()
  "Without Cargo.toml near rhash.el the error says the sources are missing."
  (rhash-install-test--with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir)))
      (make-directory pkg)
      (rhash-install-test--copy pkg)
      (let ((out (cdr (rhash-install-test--run pkg rhash-install-test--report))))
        (should (string-match-p "^error: The rhash module .* is missing" out))
        (should (string-match-p "Cargo.toml" out))))))

(ert-deftest rhash-install-missing-always-compile ()
  "With the option set, batch Emacs builds a missing module and loads it.
In a package directory (Cargo.toml beside rhash.el) the build tree
is removed afterwards."
  (skip-unless rhash-install-test--module)
  (rhash-install-test--with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir))
          (bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (make-directory pkg)
      (rhash-install-test--copy pkg)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" pkg))
      (let ((out (cdr (rhash-install-test--run
                       pkg `(progn (setq rhash-module-always-compile t)
                                   ,rhash-install-test--report)
                       bin))))
        (should (string-match-p (format "^loaded %s" (regexp-quote rhash--version)) out))
        (should (file-exists-p (rhash-install-test--target pkg)))
        (should-not (file-exists-p (expand-file-name "target" pkg)))
        (should (equal (with-temp-buffer
                         (insert-file-contents (expand-file-name "cargo.log" bin))
                         (buffer-string))
                       "build --release\n"))))))

(ert-deftest rhash-install-checkout-layout ()
  "A source checkout: the module goes to lisp/, target/ is kept.
There rhash.el is in lisp/ and Cargo.toml in its parent."
  (skip-unless rhash-install-test--module)
  (rhash-install-test--with-dir dir
    (let ((lisp (expand-file-name "lisp/" dir))
          (bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (make-directory lisp)
      (rhash-install-test--copy lisp)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
      (let ((out (cdr (rhash-install-test--run
                       lisp `(progn (setq rhash-module-always-compile t)
                                    ,rhash-install-test--report)
                       bin))))
        (should (string-match-p "^loaded " out))
        (should (file-exists-p (rhash-install-test--target lisp)))
        (should (file-directory-p (expand-file-name "target" dir)))))))

(ert-deftest rhash-install-stale-module ()
  "A module of another version is refused, naming both versions."
  (skip-unless rhash-install-test--module)
  (rhash-install-test--with-dir dir
    (rhash-install-test--copy dir "9.9.9")
    (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
    (copy-file rhash-install-test--module (rhash-install-test--target dir))
    (let ((out (cdr (rhash-install-test--run dir rhash-install-test--report))))
      (should (string-match-p
               (format "^error: The rhash module .* is version %s, but rhash.el is version 9.9.9"
                       (regexp-quote rhash--version))
               out))
      (should (string-match-p "rhash-module-compile" out))
      (should (string-match-p "rhash-module-always-compile" out)))))

(ert-deftest rhash-install-unload-reload ()
  "`unload-feature' removes hook and printer; `require' works again."
  (skip-unless rhash-install-test--module)
  (rhash-install-test--with-dir dir
    (rhash-install-test--copy dir)
    (copy-file rhash-install-test--module (rhash-install-test--target dir))
    (let* ((form
            '(let ((printer (and (boundp 'print-unreadable-function)
                                 (default-value 'print-unreadable-function)))
                   (gc-hook (copy-sequence post-gc-hook)))
               (require 'rhash)
               (let ((h (rhash-make :test 'equal)))
                 (rhash-put "k" 1 h)
                 (unload-feature 'rhash t)
                 (princ (format "unloaded %S %S %S %S\n"
                                (fboundp 'rhash-get)
                                (equal gc-hook post-gc-hook)
                                (equal printer
                                       (and (boundp 'print-unreadable-function)
                                            (default-value 'print-unreadable-function)))
                                (get 'rhash 'cl-deftype-handler)))
                 ;; Printing a table with rhash gone must still work.
                 (prin1-to-string h)
                 (cl-prin1-to-string h)
                 (require 'rhash)
                 (princ (format "again %S %S %S\n"
                                (rhash-get "k" h)
                                (rhash-count (rhash-from-alist '((a . 1))))
                                (cl-typep h 'rhash))))))
           (r (rhash-install-test--run dir form))
           (out (cdr r)))
      (should (equal (car r) 0))
      (should (string-match-p "^unloaded nil t t nil$" out))
      (should (string-match-p "^again 1 1 t$" out)))))

(ert-deftest rhash-install-printer-composes ()
  "The printer hook leaves other objects to the previous printer function."
  (skip-unless (boundp 'print-unreadable-function))
  (let ((h (rhash-make)))
    (should (equal (prin1-to-string h) "#<rhash eql 0>"))
    (should (string-prefix-p "#<marker" (prin1-to-string (make-marker))))))

(provide 'rhash-install-test)
;;; rhash-install-test.el ends here
