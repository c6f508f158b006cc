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
(require 'rhash-data)
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

(defconst rhash-install-test--fallback-el (locate-library "rhash-fallback.el")
  "The rhash-fallback.el under test (its source).")

(defun rhash-install-test--copy (dir &optional version)
  "Copy rhash.el and rhash-fallback.el into DIR.
With VERSION, make rhash.el claim that version."
  (let ((file (expand-file-name "rhash.el" dir)))
    (copy-file rhash-install-test--el file t)
    (copy-file rhash-install-test--fallback-el
               (expand-file-name "rhash-fallback.el" dir) t)
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

(defun rhash-install-test--cargo-calls (bin)
  "The arguments of each call of the fake cargo in BIN, a line each."
  (with-temp-buffer
    (insert-file-contents (expand-file-name "cargo.log" bin))
    (buffer-string)))

(defconst rhash-install-test--print-compile-log
  '(princ (format "log %s\n"
                  (let ((print-escape-newlines t))
                    (prin1-to-string
                     (with-current-buffer "*rhash-module-compile*"
                       (buffer-string))))))
  "Print the `rhash-module-compile' buffer in a child, as \"log ...\".")

(defun rhash-install-test--run (dir form &optional bin path)
  "Run FORM in a child batch Emacs with only DIR added to `load-path'.
HOME is DIR/home.  With BIN, put that directory first on PATH; with
PATH, that is the whole PATH.  The child looks for the module whatever
this run's mode (RHASH_NO_MODULE=0).
Return (STATUS . OUTPUT), OUTPUT being stdout and stderr together."
  (make-directory (expand-file-name "home" dir) t)
  (let ((process-environment
         (append (list (concat "HOME=" (expand-file-name "home" dir))
                       "RHASH_NO_MODULE=0")
                 (cond (path (list (concat "PATH=" path)))
                       (bin (list (concat "PATH=" bin path-separator (getenv "PATH")))))
                 process-environment)))
    (with-temp-buffer
      (let ((status (call-process (rhash-install-test--emacs) nil t nil
                                  "-Q" "--batch" "-L" dir
                                  "--eval" (prin1-to-string form))))
        (cons status (buffer-string))))))

(defconst rhash-install-test--report
  '(condition-case err
       (progn (require 'rhash)
              (let ((info (rhash-module-info)))
                (princ (format "loaded %s module %s\n" (plist-get info :version)
                               (plist-get info :module)))))
     (error (princ (format "error: %s" (error-message-string err)))))
  "Require rhash in a child and print \"loaded VERSION module BOOL\".")

(defconst rhash-install-test--fallback-message
  "^rhash runs in Lisp without its module (slower): "
  "The start of the message of the Lisp fallback.")

(defun rhash-install-test--direct-mode-p ()
  "Non-nil if this run is in the direct mode.
Install tests run child Emacsen that look for the module in any mode:
they run in one mode only."
  (not (or (equal (getenv "RHASH_NO_DIRECT") "1")
           (equal (getenv "RHASH_NO_MODULE") "1"))))

(ert-deftest rhash-install-module-info ()
  "The module reports its version, rhash.el's, and the direct path status.
`rhash-module-info' is a command too."
  (let ((info (rhash-module-info)))
    (should (equal (plist-get info :version) rhash--version))
    (should (memq (plist-get info :direct) '(nil t)))
    (should (eq (plist-get info :module) rhash--module))
    (if rhash--module
        (should (stringp (plist-get info :source-hash)))
      (should (stringp (plist-get info :reason))))
    (unless (plist-get info :direct)
      (should (stringp (plist-get info :direct-reason)))))
  (should (commandp 'rhash-module-info))
  (let ((msg nil))
    (cl-letf (((symbol-function 'message)
               (lambda (format &rest args) (setq msg (apply #'format-message format args)))))
      (call-interactively #'rhash-module-info))
    (should (string-match-p (regexp-quote (concat "rhash " rhash--version)) msg))))

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

(defun rhash-install-test--target (dir)
  "The module file rhash.el in DIR loads."
  (expand-file-name (concat "rhash-module" module-file-suffix) dir))

(defun rhash-install-test--first-line (out)
  "The line of OUT that holds the fallback message."
  (and (string-match (concat rhash-install-test--fallback-message ".*") out)
       (match-string 0 out)))

(ert-deftest rhash-install-missing-batch-fallback ()
  "Batch Emacs, option nil: a missing module means the Lisp fallback.
One message, whose first line names the fix: the command, the
directory and the option."
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (rhash-install-test--copy dir)
    (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
    (let* ((out (cdr (rhash-install-test--run
                      dir `(progn ,rhash-install-test--report
                                  (require 'rhash)
                                  (princ (format "p %S\n" (hash-table-p (rhash-make))))))))
           (line (rhash-install-test--first-line out)))
      (should (string-match-p "^loaded .* module nil$" out))
      (should (string-match-p "^p t$" out))
      (should line)
      (should (string-match-p "The rhash module .*rhash-module.* is missing" line))
      (should (string-match-p "rhash-module-compile" line))
      (should (string-match-p "build --release" line))
      (should (string-match-p (regexp-quote (directory-file-name (abbreviate-file-name dir)))
                              line))
      (should (string-match-p "rhash-module-always-compile" line))
      ;; One message per session.
      (should (= 1 (cl-count-if (lambda (l) (string-prefix-p "rhash runs in Lisp" l))
                                (split-string out "\n"))))
      ;; Nothing was built.
      (should-not (file-exists-p (rhash-install-test--target dir))))))

(ert-deftest rhash-install-missing-no-sources ()
  "Without Cargo.toml near rhash.el the message says the sources are missing."
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir)))
      (make-directory pkg)
      (rhash-install-test--copy pkg)
      (let* ((out (cdr (rhash-install-test--run pkg rhash-install-test--report)))
             (line (rhash-install-test--first-line out)))
        (should (string-match-p "^loaded .* module nil$" out))
        (should (string-match-p "The rhash module .* is missing" line))
        (should (string-match-p "Cargo.toml" line))))))

(ert-deftest rhash-install-declined-build ()
  "Interactive Emacs asks before building; declined, rhash runs in Lisp."
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (rhash-install-test--copy dir)
    (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
    (let ((out (cdr (rhash-install-test--run
                     dir '(let ((prompts nil))
                            ;; (A child process: its `y-or-n-p' says no.)
                            (fset 'y-or-n-p (lambda (prompt) (push prompt prompts) nil))
                            (let ((noninteractive nil)) (require 'rhash))
                            (princ (format "asked %S\nmodule %S\nreason %s\n"
                                           prompts (plist-get (rhash-module-info) :module)
                                           (plist-get (rhash-module-info) :reason))))))))
      (should (string-match-p "^asked (\"The rhash module .* is missing.  Build it now with cargo\\? \")$"
                              out))
      (should (string-match-p "^module nil$" out))
      (should (string-match-p "^reason The rhash module .* is missing; build it with M-x rhash-module-compile"
                              out))
      (should-not (file-exists-p (rhash-install-test--target dir))))))

(ert-deftest rhash-install-no-module-support ()
  "An Emacs without module support runs rhash in Lisp, saying why."
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (rhash-install-test--copy dir)
    (let* ((out (cdr (rhash-install-test--run
                      dir `(progn (setq module-file-suffix nil)
                                  ,rhash-install-test--report
                                  (princ (plist-get (rhash-module-info) :reason))))))
           (line (rhash-install-test--first-line out)))
      (should (string-match-p "^loaded .* module nil$" out))
      (should (string-match-p "without dynamic module support" line)))))

(ert-deftest rhash-install-no-cargo ()
  "With the option set but no cargo anywhere: the fallback, with the message."
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir))
          (empty (expand-file-name "empty/" dir)))
      (make-directory pkg)
      (make-directory empty)
      (rhash-install-test--copy pkg)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" pkg))
      (let* ((out (cdr (rhash-install-test--run
                        pkg `(progn (setq rhash-module-always-compile t)
                                    ,rhash-install-test--report)
                        nil empty)))
             (line (rhash-install-test--first-line out)))
        (should (string-match-p "^loaded .* module nil$" out))
        (should (string-match-p "building it failed" line))
        (should (string-match-p "rustup" line))
        (should-not (file-exists-p (rhash-install-test--target pkg)))))))

(ert-deftest rhash-install-missing-always-compile ()
  "With the option set, batch Emacs builds a missing module and loads it.
It says what it does before cargo runs, and shows cargo's output.  In
a package directory (Cargo.toml beside rhash.el) the build tree is
removed afterwards."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir))
          (bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (make-directory pkg)
      (rhash-install-test--copy pkg)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" pkg))
      (with-temp-file (expand-file-name "cargo" bin)
        (insert-file-contents (expand-file-name "cargo" bin))
        (goto-char (point-max))
        (insert "echo '   Compiling rhash (fake)'\n"))
      (let ((out (cdr (rhash-install-test--run
                       pkg `(progn (setq rhash-module-always-compile t)
                                   ,rhash-install-test--report)
                       bin))))
        (should (string-match-p (format "^loaded %s module t$" (regexp-quote rhash--version))
                                out))
        (should (string-match-p "^rhash: building the module with cargo .*about" out))
        (should (string-match-p "Compiling rhash (fake)" out))
        (should (file-exists-p (rhash-install-test--target pkg)))
        (should-not (file-exists-p (expand-file-name "target" pkg)))
        (should (equal (rhash-install-test--cargo-calls bin)
                       "build --release\n"))))))

(ert-deftest rhash-install-compile-in-batch ()
  "After a require that fell back, `rhash-module-compile' builds once in batch.
It keeps cargo's log in its buffer and says that a restart is needed."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir))
          (bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (make-directory pkg)
      (rhash-install-test--copy pkg)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" pkg))
      (let ((out (cdr (rhash-install-test--run
                       pkg `(progn (require 'rhash)
                                   (let ((file (rhash-module-compile)))
                                     (princ (format "built %s\n" (file-exists-p file))))
                                   ,rhash-install-test--print-compile-log)
                       bin))))
        (should (string-match-p "^built t$" out))
        (should (string-match-p "restart Emacs to use it" out))
        (should (string-match-p "^log .*build --release.*cargo finished" out))
        (should (equal (rhash-install-test--cargo-calls bin)
                       "build --release\n"))))))

(ert-deftest rhash-install-rebuild-says-restart ()
  "Rebuilding while the module is loaded says that a restart is needed."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (rhash-install-test--copy dir)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
      (copy-file rhash-install-test--module (rhash-install-test--target dir))
      (let ((out (cdr (rhash-install-test--run
                       dir `(progn ,rhash-install-test--report
                                   (rhash-module-compile))
                       bin))))
        (should (string-match-p "^loaded .* module t$" out))
        (should (string-match-p "restart Emacs to use the new module" out))))))

(ert-deftest rhash-install-command-loads-and-builds-once ()
  "`rhash-module-compile' as the command that loads rhash builds once, unasked."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((pkg (expand-file-name "pkg/" dir))
          (bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (make-directory pkg)
      (rhash-install-test--copy pkg)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" pkg))
      (let ((out (cdr (rhash-install-test--run
                       pkg `(progn
                              (autoload 'rhash-module-compile "rhash" nil t)
                              (setq this-command 'rhash-module-compile)
                              (call-interactively #'rhash-module-compile)
                              (princ (format "module %S\n" (plist-get (rhash-module-info) :module)))
                              ,rhash-install-test--print-compile-log)
                       bin))))
        (should (string-match-p "^module t$" out))
        (should (string-match-p "^log .*cargo finished" out))
        (should (equal (rhash-install-test--cargo-calls bin)
                       "build --release\n"))))))

(ert-deftest rhash-install-checkout-layout ()
  "A source checkout: the module goes to lisp/, target/ is kept.
There rhash.el is in lisp/ and Cargo.toml in its parent."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((lisp (expand-file-name "lisp/" dir))
          (bin (rhash-install-test--fake-cargo (expand-file-name "bin/" dir))))
      (make-directory lisp)
      (rhash-install-test--copy lisp)
      (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
      (let ((out (cdr (rhash-install-test--run
                       lisp `(progn (setq rhash-module-always-compile t)
                                    ,rhash-install-test--report)
                       bin))))
        (should (string-match-p "^loaded .* module t$" out))
        (should (file-exists-p (rhash-install-test--target lisp)))
        (should (file-directory-p (expand-file-name "target" dir)))))))

(ert-deftest rhash-install-stale-module ()
  "A module of another version is refused, naming both versions.
Batch Emacs goes on in the fallback; the message's first line says how
to rebuild."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (rhash-install-test--copy dir "9.9.9")
    (write-region "[package]\n" nil (expand-file-name "Cargo.toml" dir))
    (copy-file rhash-install-test--module (rhash-install-test--target dir))
    (let* ((out (cdr (rhash-install-test--run dir rhash-install-test--report)))
           (line (rhash-install-test--first-line out)))
      (should (string-match-p "^loaded 9.9.9 module nil$" out))
      (should (string-match-p
               (format "The rhash module .* is version %s, but rhash.el is version 9.9.9"
                       (regexp-quote rhash--version))
               line))
      (should (string-match-p "rhash-module-compile" line))
      (should (string-match-p "rhash-module-always-compile" line)))))

(defun rhash-install-test--copy-sources (dir)
  "Copy the Rust sources the module was built from into DIR."
  (dolist (f '("Cargo.toml" "build.rs"))
    (copy-file (expand-file-name f rhash-install-test--root) (expand-file-name f dir)))
  (let ((src (expand-file-name "src" rhash-install-test--root)))
    (dolist (f (directory-files-recursively src "\\.rs\\'"))
      (let ((to (expand-file-name (file-relative-name f rhash-install-test--root) dir)))
        (make-directory (file-name-directory to) t)
        (copy-file f to)))))

(ert-deftest rhash-install-stale-sources ()
  "A module built from other sources than those beside rhash.el is refused.
The scenario of a `git pull' without `make': same version, changed
sources.  With the sources it was built from, the module loads."
  (skip-unless (and rhash-install-test--module rhash-install-test--root
                    (equal (plist-get (rhash-module-info) :source-hash)
                           (rhash--source-hash rhash-install-test--root))))
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
    (let ((lisp (expand-file-name "lisp/" dir)))
      (make-directory lisp)
      (rhash-install-test--copy lisp)
      (rhash-install-test--copy-sources dir)
      (copy-file rhash-install-test--module (rhash-install-test--target lisp))
      (should (string-match-p "^loaded .* module t$"
                              (cdr (rhash-install-test--run lisp rhash-install-test--report))))
      ;; The sources change (one byte), the module stays.
      (with-temp-file (expand-file-name "src/info.rs" dir)
        (insert-file-contents (expand-file-name "src/info.rs" dir))
        (goto-char (point-max))
        (insert "\n"))
      (let* ((out (cdr (rhash-install-test--run lisp rhash-install-test--report)))
             (line (rhash-install-test--first-line out)))
        (should (string-match-p "^loaded .* module nil$" out))
        (should (string-match-p "built from other sources than those in" line))
        (should (string-match-p "rhash-module-compile" line))
        (should-not (string-match-p "void-function" out))))))

(ert-deftest rhash-install-unload-reload ()
  "`unload-feature' removes hook and printer; `require' works again."
  (skip-unless rhash-install-test--module)
  (skip-unless (rhash-install-test--direct-mode-p))
  (rhash-data-with-dir dir
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
  (skip-unless (and rhash--module (boundp (quote print-unreadable-function))))
  (let ((h (rhash-make)))
    (should (equal (prin1-to-string h) "#<rhash eql 0>"))
    (should (string-prefix-p "#<marker" (prin1-to-string (make-marker))))))

(provide 'rhash-install-test)
;;; rhash-install-test.el ends here
