;;; rhash.el --- Hash tables in Rust, drop-in for the built-ins  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 the rhash authors

;; Author: Seed 6ecf0314 maintainers <maintainers@users.noreply.b-seed-6ecf0314.example>
;; Maintainer: Seed 6ecf0314 maintainers <maintainers@users.noreply.b-seed-6ecf0314.example>
;; URL: https://rhash.invalid/rhash
;; Version: 0.1.0
;; Package-Requires: ((emacs "27.1"))
;; Keywords: data, extensions
;; SPDX-License-Identifier: GPL-3.0-or-later

;; This file is not part of GNU Emacs.

;;; Commentary:

;; rhash tables are hash tables implemented in Rust and loaded as a
;; dynamic module.  Every function mirrors a built-in one with the same
;; arguments, return values, errors and iteration order:
;;
;;   make-hash-table -> `rhash-make'      gethash  -> `rhash-get'
;;   puthash         -> `rhash-put'       remhash  -> `rhash-remove'
;;   clrhash         -> `rhash-clear'     maphash  -> `rhash-map'
;;   hash-table-count -> `rhash-count'    copy-hash-table -> `rhash-copy'
;;   ...and `rhash-p', `rhash-test', `rhash-size', `rhash-weakness',
;;   `rhash-keys', `rhash-values', `rhash-contains-p', `rhash-empty-p'.
;;
;; `setf', `cl-incf', `push' work on `rhash-get' places, map.el's generic
;; functions accept rhash tables, and conversions to and from hash
;; tables, alists and plists keep the iteration order.
;;
;; Differences from the built-ins: tables are never weak (`:weakness'
;; signals `rhash-unsupported'), and the printed form is a summary
;; that cannot be read back.  See README.md.
;;
;; Where no module can be loaded, rhash goes on in Lisp on built-in
;; hash tables (rhash-fallback.el): slower, same results.
;; `M-x rhash-module-info' says which one runs.

;;; Code:

(require 'cl-lib)
(require 'gv)
(require 'macroexp)
(require 'map)
(require 'seq)

(define-error 'rhash-unsupported "Unsupported by rhash")
(define-error 'rhash-file-error "Not a valid rhash table file" 'file-error)

;;;; The module

(defgroup rhash nil
  "Hash tables in Rust, drop-in for the built-ins."
  :group 'data
  :prefix "rhash-")

(defcustom rhash-module-always-compile nil
  "Non-nil means build a missing or stale rhash module without asking.
When nil, interactive Emacs asks before building it; batch Emacs
\(or a declined or failed build) goes on without the module, in the
Lisp fallback, with a message that says how to build it.  Building
runs cargo, the Rust build tool, on the sources that come with
rhash.el."
  :type 'boolean)

(defconst rhash--version "0.1.0"
  "The version of rhash.el: its module must report the same one.")

(defconst rhash--directory
  (file-name-directory (or load-file-name buffer-file-name default-directory))
  "The directory rhash.el was loaded from, where the module is looked for.")

(defconst rhash--compile-buffer "*rhash-module-compile*"
  "The buffer that shows the output of `rhash-module-compile'.")

(defun rhash--module-target ()
  "The file name of the module beside rhash.el, for this OS."
  (expand-file-name (concat "rhash-module" module-file-suffix) rhash--directory))

(defun rhash--module-file ()
  "The module to load: the one beside rhash.el, else one on `load-path'.
If there is none, the one beside rhash.el, which does not exist."
  (let ((file (rhash--module-target)))
    (if (file-exists-p file)
        file
      (or (locate-library (file-name-nondirectory file) t) file))))

(defun rhash--source-directory ()
  "The directory of the Rust sources (Cargo.toml), or nil if there are none.
That is the directory of rhash.el in a package that brings the sources
along, or its parent in a source checkout (rhash.el is in lisp/)."
  (seq-find (lambda (dir) (file-exists-p (expand-file-name "Cargo.toml" dir)))
            (list rhash--directory
                  (file-name-directory (directory-file-name rhash--directory)))))

(defun rhash--cargo ()
  "The cargo program: on the variable `exec-path'.
Else rustup's ~/.cargo/bin/cargo, else just \"cargo\"."
  (or (executable-find "cargo")
      (let ((file (expand-file-name "~/.cargo/bin/cargo")))
        (and (file-executable-p file) file))
      "cargo"))

(defun rhash--cargo-output ()
  "The name cargo gives the built library on this OS."
  (pcase system-type
    ('darwin "librhash.dylib")
    ((or 'windows-nt 'ms-dos 'cygwin) "rhash.dll")
    (_ "librhash.so")))

(defun rhash--build-hint ()
  "How to build the module, for messages (one line, the fix first)."
  (let ((src (rhash--source-directory)))
    (if src
        (format "build it with M-x rhash-module-compile (it runs `%s build \
--release' in %s; cargo comes with Rust, see https://rustup.rs), or set \
`rhash-module-always-compile' to build it when rhash loads"
                (rhash--cargo) (abbreviate-file-name src))
      (format "the Rust sources (Cargo.toml) are neither in %s nor in its \
parent: reinstall rhash with its sources, then build it with M-x \
rhash-module-compile or set `rhash-module-always-compile'"
              (abbreviate-file-name rhash--directory)))))

(defvar rhash--module nil
  "Non-nil when rhash runs on its module, nil in the Lisp fallback.")

(defvar rhash--fallback-reason nil
  "Why rhash runs without its module (a string), or nil if it has it.")

(defvar rhash--load-built nil
  "The module file built while rhash.el was loading, or nil.
`rhash-module-compile', when it is the command that loaded rhash.el,
does not build it a second time.")

(defun rhash--compile-status (status)
  "A short description of cargo's exit STATUS."
  (if (eql status 0) "finished" (format "failed: %s" status)))

(defun rhash--run-cargo (cargo args buffer)
  "Run CARGO with ARGS, output into BUFFER; return the exit status.
Cargo's progress is shown as it comes: in BUFFER, displayed, in
interactive Emacs; on standard error in batch Emacs."
  (let* ((echo noninteractive)
         (proc (make-process
                :name "rhash-cargo" :buffer buffer :command (cons cargo args)
                :connection-type 'pipe :noquery t
                :filter (lambda (p string)
                          (when (buffer-live-p (process-buffer p))
                            (with-current-buffer (process-buffer p)
                              (let ((inhibit-read-only t))
                                (goto-char (point-max))
                                (insert string))))
                          (when echo (princ string #'external-debugging-output)))
                :sentinel #'ignore))
         (done nil))
    (unwind-protect
        (progn
          (while (process-live-p proc)
            (accept-process-output proc 0.2)
            (unless noninteractive (redisplay)))
          ;; Output still buffered after the exit.
          (while (accept-process-output proc 0))
          (setq done t)
          (process-exit-status proc))
      (unless done (delete-process proc)))))

;;;###autoload
(defun rhash-module-compile ()
  "Build the rhash module with cargo and install it beside rhash.el.
Cargo.toml is looked for beside rhash.el (a package that brings the
Rust sources along) and in its parent directory (a source checkout).
The output goes to the buffer *rhash-module-compile*, shown unless
Emacs runs in batch, where cargo's progress goes to standard error.
The library is installed as rhash-module plus `module-file-suffix'
\(.so, .dylib or .dll); in a package directory cargo's target
directory is removed afterwards.  A module already loaded in this
Emacs (or the Lisp fallback in use) stays in use until Emacs restarts:
the message says so.  Returns the file name of the installed module."
  (interactive)
  (if (and rhash--load-built (eq this-command 'rhash-module-compile))
      ;; This command loaded rhash.el, which just built the module.
      (prog1 rhash--load-built
        (setq rhash--load-built nil))
    (rhash--compile)))

(defun rhash--compile ()
  "Build and install the module; see `rhash-module-compile'."
  (unless module-file-suffix
    (error "This Emacs has no dynamic module support: rhash runs in Lisp"))
  (let* ((src (or (rhash--source-directory)
                  (error "Cannot build the rhash module: %s" (rhash--build-hint))))
         (default-directory src)
         (cargo (rhash--cargo))
         (args '("build" "--release"))
         (buffer (get-buffer-create rhash--compile-buffer))
         (start (float-time))
         status)
    (with-current-buffer buffer
      (let ((inhibit-read-only t))
        (erase-buffer)
        (compilation-mode)
        (setq default-directory src)
        (insert (format "cd %s && %s\n" (shell-quote-argument src)
                        (mapconcat #'shell-quote-argument (cons cargo args) " ")))))
    (unless noninteractive (display-buffer buffer))
    (message "rhash: building the module with cargo in %s (about 20 s to 2 min; %s)..."
             (abbreviate-file-name src)
             (if noninteractive "cargo's output follows" "output in *rhash-module-compile*"))
    (setq status (condition-case err
                     (rhash--run-cargo cargo args buffer)
                   (file-error
                    (with-current-buffer buffer
                      (let ((inhibit-read-only t))
                        (goto-char (point-max))
                        (insert (error-message-string err) "\n")))
                    "cargo not found; get it with rustup, https://rustup.rs")))
    (with-current-buffer buffer
      (let ((inhibit-read-only t))
        (goto-char (point-max))
        (insert (format "\nrhash: cargo %s after %.0f s\n"
                        (rhash--compile-status status) (- (float-time) start)))))
    (unless (eql status 0)
      (unless noninteractive (pop-to-buffer buffer))
      (error "Building the rhash module failed (%s); see buffer %s"
             status rhash--compile-buffer))
    (let* ((built (expand-file-name (concat "target/release/" (rhash--cargo-output)) src))
           (file (rhash--module-target))
           (tmp (make-temp-file (expand-file-name "rhash-module-new" rhash--directory)
                                nil module-file-suffix)))
      ;; Copy then rename: a new file, never the one this process may have
      ;; mapped (writing into a loaded library crashes Emacs).
      (copy-file built tmp t)
      (rename-file tmp file t)
      (when (equal (file-name-as-directory src) rhash--directory)
        ;; A package directory: the build tree is hundreds of MB.
        (delete-directory (expand-file-name "target" src) t))
      (message "Built the rhash module and installed it as %s%s"
               (abbreviate-file-name file)
               (cond ((not (featurep 'rhash)) "")
                     (rhash--module "; restart Emacs to use the new module \
(the one loaded stays in use)")
                     (t "; restart Emacs to use it (rhash runs in Lisp until then)")))
      file)))

(defun rhash--source-hash (src)
  "The hash of the Rust sources in SRC, as build.rs computes it."
  (let ((files (append '("Cargo.toml" "build.rs")
                       (sort (mapcar (lambda (f) (file-relative-name f src))
                                     (directory-files-recursively
                                      (expand-file-name "src" src) "\\.rs\\'"))
                             #'string<))))
    (with-temp-buffer
      (set-buffer-multibyte nil)
      (dolist (f files)
        (let ((file (expand-file-name f src)))
          (when (file-regular-p file)
            (let ((start (point)))
              (insert-file-contents-literally file)
              (goto-char (point-max))
              (save-excursion
                (goto-char start)
                (insert f 0 (number-to-string (- (point-max) start)) 0))))))
      (secure-hash 'sha256 (current-buffer)))))

(defun rhash--module-problem (file)
  "Return what is wrong with the loaded module FILE, or nil if nothing.
It must report `rhash--version' and, when the Rust sources are
beside rhash.el, the hash of those sources."
  (let* ((info (and (fboundp 'rhash--module-info) (funcall #'rhash--module-info)))
         (version (plist-get info :version))
         (src (rhash--source-directory)))
    (cond
     ((not info)
      (format "The rhash module %s predates rhash.el %s"
              (abbreviate-file-name file) rhash--version))
     ((not (equal version rhash--version))
      (format "The rhash module %s is version %s, but rhash.el is version %s"
              (abbreviate-file-name file) version rhash--version))
     ((and src (file-directory-p (expand-file-name "src" src))
           (not (equal (plist-get info :source-hash) (rhash--source-hash src))))
      (format "The rhash module %s was built from other sources than those in %s \
\(they changed since)"
              (abbreviate-file-name file) (abbreviate-file-name src))))))

(define-error 'rhash--no-module "No rhash module")

(defun rhash--ask-build (problem)
  "Build the module after PROBLEM, if allowed; else signal `rhash--no-module'.
PROBLEM says what is wrong with the module.  Allowed means
`rhash-module-always-compile' is non-nil, or, in interactive
Emacs, the user says yes (not asked when the command
`rhash-module-compile' loads rhash).  Return the file name of the
new module."
  (if (or rhash-module-always-compile
          (eq this-command 'rhash-module-compile)
          (and (not noninteractive)
               (rhash--source-directory)
               (y-or-n-p (format "%s.  Build it now with cargo? " problem))))
      (condition-case err
          (let ((file (rhash--compile)))
            (when (eq this-command 'rhash-module-compile)
              (setq rhash--load-built file))
            file)
        (error (signal 'rhash--no-module
                       (list (format "%s, and building it failed (%s); %s"
                                     problem (error-message-string err)
                                     (rhash--build-hint))))))
    (signal 'rhash--no-module (list (format "%s; %s" problem (rhash--build-hint))))))

(defun rhash--module-load (file fresh)
  "Load the module FILE; with FRESH non-nil, from a copy of it.
The copy has a new name: loading the same name again would give back
the library already in this process, which may be an older build."
  (if (not fresh)
      (module-load file)
    (let ((copy (make-temp-file "rhash-module-" nil module-file-suffix)))
      (unwind-protect
          (progn (copy-file file copy t)
                 (module-load copy))
        (ignore-errors (delete-file copy))))))

(defun rhash--load-module ()
  "Load the module, building it when it is missing or stale, if allowed.
A module of a version other than `rhash--version', or built from
other sources than those beside rhash.el, is stale.  Signal
`rhash--no-module' when no good module can be loaded.  See
`rhash-module-always-compile'."
  (let ((file (rhash--module-file))
        (fresh nil))
    (unless (file-exists-p file)
      (setq file (rhash--ask-build (format "The rhash module %s is missing"
                                           (abbreviate-file-name file))))
      (setq fresh (featurep 'rhash-module)))
    (rhash--module-load file fresh)
    (let ((problem (rhash--module-problem file)))
      (when problem
        (setq file (rhash--ask-build problem))
        (rhash--module-load file t)
        (let ((again (rhash--module-problem file)))
          (when again
            (signal 'rhash--no-module (list (format "After a rebuild: %s" again)))))))))

(defun rhash--choose ()
  "Load the module; else return why rhash must go on in Lisp without it."
  (cond
   ((equal (getenv "RHASH_NO_MODULE") "1")
    "RHASH_NO_MODULE=1 is set")
   ((not module-file-suffix)
    "this Emacs was built without dynamic module support")
   (t (condition-case err
          (progn (rhash--load-module) nil)
        (rhash--no-module (cadr err))
        (error (format "loading the module failed (%s); %s"
                       (error-message-string err) (rhash--build-hint)))))))

(setq rhash--fallback-reason (rhash--choose)
      rhash--module (not rhash--fallback-reason))

(defun rhash-module-info ()
  "Return a plist describing rhash's module; interactively, show it.
:version is rhash's version; :module is t when the module is loaded,
nil in the Lisp fallback, and then :reason says why; :direct is t
when the module's direct path is in use, else :direct-reason says
why not.  With the module, :source-hash is the hash of the sources
it was built from."
  (interactive)
  (let ((info (if rhash--module
                  (funcall #'rhash--module-info)
                (list :version rhash--version :module nil
                      :reason rhash--fallback-reason
                      :direct nil :direct-reason "no module"))))
    (when (called-interactively-p 'any)
      (message "rhash %s: %s" (plist-get info :version)
               (cond ((not (plist-get info :module))
                      (format "Lisp fallback, no module: %s" (plist-get info :reason)))
                     ((plist-get info :direct) "module loaded, direct path")
                     (t (format "module loaded, official path (%s)"
                                (plist-get info :direct-reason))))))
    info))

;; Defined by the module.
(declare-function rhash--make "rhash-module" (test cmp hash size &optional storage))
(declare-function rhash-storage "rhash-module" (table))
(declare-function rhash--save-table "rhash-module" (table file))
(declare-function rhash--load-native "rhash-module" (table loaded))
(declare-function rhash-p "rhash-module" (object))
(declare-function rhash-get "rhash-module" (key table &optional default))
(declare-function rhash-put "rhash-module" (key value table))
(declare-function rhash-remove "rhash-module" (key table))
(declare-function rhash-clear "rhash-module" (table))
(declare-function rhash-count "rhash-module" (table))
(declare-function rhash-copy "rhash-module" (table))
(declare-function rhash-test "rhash-module" (table))
(declare-function rhash-size "rhash-module" (table))
(declare-function rhash-weakness "rhash-module" (table))
(declare-function rhash-keys "rhash-module" (table))
(declare-function rhash-values "rhash-module" (table))
(declare-function rhash-contains-p "rhash-module" (key table))
(declare-function rhash-empty-p "rhash-module" (table))
(declare-function rhash--adopt "rhash-module" (table keys vals))
(declare-function rhash--save-vectors "rhash-module" (test storage keys vals file))
(declare-function rhash--load-file "rhash-module" (file))
(declare-function rhash--loaded-vectors "rhash-module" (loaded))
(declare-function rhash--flush-cache "rhash-module" ())
(declare-function rhash--storage "rhash-module" (table))
(declare-function rhash--hole "rhash-module" ())
(declare-function rhash--module-info "rhash-module" ())
(declare-function rhash-get-many "rhash-module" (keys table &optional default))
(declare-function rhash-put-many "rhash-module" (keys values table))
(declare-function rhash-merge "rhash-module" (table &rest sources))
(declare-function rhash-merge-with "rhash-module" (function table &rest sources))
(declare-function rhash-union "rhash-module" (a b))
(declare-function rhash-intersection "rhash-module" (a b))
(declare-function rhash-difference "rhash-module" (a b))
(declare-function rhash-equal "rhash-module" (a b &optional predicate))
(declare-function rhash-tally-into "rhash-module" (sequence table))
(declare-function rhash-uniq "rhash-module" (sequence &optional test))
(declare-function rhash-compact "rhash-module" (table))
(declare-function rhash-stats "rhash-module" (table))
(declare-function rhash--pairs "rhash-module" (table))
(declare-function rhash--walk "rhash-module" (function table))
(declare-function rhash--walk-mark "rhash-module" (table begin))

;; The module keeps the table of a run of calls referenced for fast type
;; checks; dropping that reference after each GC lets a table the program
;; dropped be collected by the next one.
(when rhash--module
  (add-hook 'post-gc-hook #'rhash--flush-cache))

;; The byte-compiler knows the arity of Lisp functions (and of the Lisp
;; fallback's), not of module functions: a compiler macro per module
;; function warns about a wrong number of arguments as the byte-compiler
;; does for `puthash'.  It returns the call unchanged (no cost at run
;; time; the module itself signals the error).  The arities are the
;; contract's, written here: a module function that checks its own
;; argument count (to name itself in the error) may declare any.
(defconst rhash--module-arities
  '((rhash-p 1 . 1) (rhash-get 2 . 3) (rhash-put 3 . 3) (rhash-remove 2 . 2)
    (rhash-clear 1 . 1) (rhash-count 1 . 1) (rhash-copy 1 . 1) (rhash-test 1 . 1)
    (rhash-size 1 . 1) (rhash-weakness 1 . 1) (rhash-keys 1 . 1) (rhash-values 1 . 1)
    (rhash-contains-p 2 . 2) (rhash-empty-p 1 . 1) (rhash-get-many 2 . 3)
    (rhash-put-many 3 . 3) (rhash-merge 1 . many) (rhash-merge-with 2 . many)
    (rhash-union 2 . 2) (rhash-intersection 2 . 2) (rhash-difference 2 . 2)
    (rhash-equal 2 . 3) (rhash-tally-into 2 . 2) (rhash-uniq 1 . 2)
    (rhash-compact 1 . 1) (rhash-stats 1 . 1) (rhash-storage 1 . 1)
    (rhash-plain-data-p 1 . 1) (rhash-save 2 . 2) (rhash-load 1 . many))
  "The public functions the module defines, with their (MIN . MAX) arity.")

(defun rhash--arity-warning (name n arity)
  "The warning for a call of NAME with N arguments, or nil if ARITY takes N.
ARITY is (MIN . MAX) as `func-arity' gives it."
  (let ((min (car arity)) (max (cdr arity)))
    (unless (and (<= min n) (or (eq max 'many) (<= n max)))
      (format "%s called with %d argument%s, but %s" name n (if (= n 1) "" "s")
              (cond ((eql min max) (format "requires %d" min))
                    ((< n min) (format "requires at least %d" min))
                    (t (format "accepts only %d" max)))))))

(defun rhash--check-arity (form &rest _args)
  "Warn if FORM has a call of a module function with bad arity.
A compiler macro.
Return FORM unchanged."
  (let* ((name (car form))
         (arity (cdr (assq name rhash--module-arities)))
         (msg (and arity (rhash--arity-warning name (length (cdr form)) arity))))
    (if msg
        ;; (Emacs 27 has it as `macroexp--warn-and-return'.)
        (funcall (if (fboundp 'macroexp-warn-and-return)
                     'macroexp-warn-and-return
                   'macroexp--warn-and-return)
                 msg form)
      form)))

(when rhash--module
  (dolist (f rhash--module-arities)
    (put (car f) 'compiler-macro #'rhash--check-arity)))

;; The module answers some questions by catching a signal (a fast path);
;; while such signals could be seen (`debug-on-signal',
;; `signal-hook-function'), it asks only questions that cannot signal.
(declare-function rhash--signals-visible "rhash-module" (flag))

(defun rhash--watch-signals (symbol newval _operation where)
  "Keep the module told whether caught signals are visible.
A variable watcher on SYMBOL, `debug-on-signal' or
`signal-hook-function', about to become NEWVAL (in buffer WHERE)."
  (rhash--signals-visible
   (or newval where
       (if (eq symbol 'debug-on-signal) signal-hook-function debug-on-signal))))

(when rhash--module
  (add-variable-watcher 'debug-on-signal #'rhash--watch-signals)
  (add-variable-watcher 'signal-hook-function #'rhash--watch-signals)
  (rhash--signals-visible (or debug-on-signal signal-hook-function)))

;;;; Making tables

(defun rhash--signal-error (message arg)
  "Signal `error' with MESSAGE and ARG as `make-hash-table' does.
A proper list ARG is spliced into the data, anything else is added."
  (signal 'error (cons message (if (proper-list-p arg) arg (list arg)))))

(defun rhash--key-arg (key args used)
  "Return the index of KEY's value in ARGS, marking both as USED.
Like `make-hash-table': the first unused occurrence of KEY that has a
value after it wins; nil if there is none."
  (let ((i 1) (n (length args)) found)
    (while (and (not found) (< i n))
      (when (and (not (aref used (1- i))) (eq (nth (1- i) args) key))
        (aset used (1- i) t)
        (aset used i t)
        (setq found i))
      (setq i (1+ i)))
    found))

(defconst rhash--check-rehash-args
  (condition-case nil (ignore (make-hash-table :rehash-size)) (error t))
  "Non-nil if `make-hash-table' rejects bad rehash arguments (Emacs < 30).")

(defun rhash--resolve-test (test)
  "Return (TEST CMP HASH), what the test named TEST compares and hashes with.
CMP and HASH are nil for `eq', `eql' and `equal', else the functions
given to `define-hash-table-test'.  Signal as `make-hash-table' does if
TEST names no test.  The module resolves test names with this too
\(`rhash-uniq')."
  (if (memq test '(eq eql equal))
      (list test nil nil)
    (let ((prop (get test 'hash-table-test)))
      (unless (and (consp prop) (consp (cdr prop)))
        (rhash--signal-error "Invalid hash table test" test))
      (list test (car prop) (cadr prop)))))

(defun rhash-make (&rest keyword-args)
  "Create and return a new rhash table, like `make-hash-table'.

KEYWORD-ARGS are keyword/value pairs:

:test TEST -- TEST is `eq', `eql' (the default), `equal', or a name
given to `define-hash-table-test'.  A user test is resolved now:
redefining it later does not change this table.

:size SIZE -- a hint of how many entries the table will hold.

:weakness WEAK -- only nil is accepted; any other valid weakness
signals `rhash-unsupported' (the module API cannot make weak
references).

:storage STORAGE -- `lisp' (the default) keeps keys and values as
Lisp objects, as a built-in table does.  `native' keeps copies of
them in the module's own memory, where the garbage collector never
scans them: choose it for big, long-lived tables of plain data (see
`rhash-plain-data-p'), whose every collection would otherwise mark
them all.  The price: keys and values must be plain data (else
`wrong-type-argument'), strings, conses and vectors read out are
fresh copies (never `eq' to what was put, without text properties),
TEST must be `eq', `eql' or `equal', and an `eq' or `eql' table takes
only keys whose identity a copy keeps (fixnums and symbols; for `eql'
also floats and bignums), else `rhash-unsupported'.

:rehash-size, :rehash-threshold and :purecopy are accepted and
ignored, as in Emacs 30 (where `make-hash-table' checks the rehash
arguments, as Emacs 28 does, they are checked the same way).  Bad
arguments signal what `make-hash-table' signals.

\(fn &rest KEYWORD-ARGS)"
  (let* ((args keyword-args)
         (used (make-vector (length args) nil))
         (i (rhash--key-arg :test args used))
         (test (rhash--resolve-test (if i (nth i args) 'eql)))
         size weakness storage)
    (rhash--key-arg :purecopy args used)
    (setq i (rhash--key-arg :storage args used))
    (setq storage (if i (nth i args) 'lisp))
    (unless (memq storage '(lisp native))
      (rhash--signal-error "Invalid hash table storage" storage))
    (when (and (eq storage 'native) (not (memq (car test) '(eq eql equal))))
      (signal 'rhash-unsupported
              (list "Native tables take only the tests eq, eql and equal"
                    (car test))))
    (setq i (rhash--key-arg :size args used))
    (setq size (if i (nth i args) nil))
    (cond ((null size) (setq size 0))
          ((not (and (fixnump size) (>= size 0)))
           (rhash--signal-error "Invalid hash table size" size)))
    ;; Emacs 28 checks the obsolete rehash arguments (values, duplicates,
    ;; a missing value); 30 ignores them.  Ask `make-hash-table' itself
    ;; when they occur, with the size (valid here) set to 0.
    ;; (It checks them before the weakness, as here.)
    (when (and rhash--check-rehash-args
               (or (memq :rehash-size args) (memq :rehash-threshold args)))
      (let ((copy (copy-sequence args)))
        (when i (setf (nth i copy) 0))
        (ignore (apply #'make-hash-table copy))))
    (setq i (rhash--key-arg :weakness args used))
    (setq weakness (if i (nth i args) nil))
    (cond ((null weakness))
          ((memq weakness '(key value key-or-value key-and-value t))
           (signal 'rhash-unsupported
                   (list "Weak tables are not supported: the module API \
cannot make weak references" weakness)))
          (t (rhash--signal-error "Invalid hash table weakness" weakness)))
    (let ((j 0) (n (length args)))
      (while (< j n)
        (unless (aref used j)
          (if (memq (nth j args) '(:rehash-threshold :rehash-size))
              (setq j (1+ j))
            (rhash--signal-error "Invalid argument list" (nth j args))))
        (setq j (1+ j))))
    (if (eq storage 'native)
        (rhash--make (nth 0 test) nil nil size 'native)
      (rhash--make (nth 0 test) (nth 1 test) (nth 2 test) size))))

;;;; Walking

(defconst rhash--hole (and rhash--module (rhash--hole))
  "The module's marker for free slots in a table's storage vectors.")

(defun rhash-map (function table)
  "Call FUNCTION with each key and value of TABLE; return nil.
The order is the table's iteration order: insertion order, a removed
key's place reused by the next new key.  FUNCTION may set or remove
the current key; keys it adds in later places are visited, and
clearing the table ends the walk.  Like `maphash'.  A `rhash-compact'
of TABLE during the walk waits for the walk's end."
  ;; On the direct path the module walks (`rhash--walk'): it reads each
  ;; entry without Lisp and calls FUNCTION itself, as `maphash' does.
  (unless (rhash--walk function table)
    (rhash--walk-lisp function table))
  nil)

(defun rhash--walk-lisp (function table)
  "Call FUNCTION with each key and value of TABLE, walking from Lisp.
The official path's `rhash-map'."
  ;; Entry I lives in slot I of the storage vectors for its whole life, so
  ;; the walk goes by slot.  The cell is re-read after each call because
  ;; FUNCTION may make the table reallocate its vectors.
  ;;
  ;; A key and its value are read by two `aref's in a row: compiled, no
  ;; garbage collection (so no Lisp) can run between them.  Interpreted,
  ;; one can, and a GC hook may free the slot meanwhile: so the marker is
  ;; looked for in both (it is never a key or value of an entry).
  ;;
  ;; While the walk is marked (`rhash--walk-mark'), a compaction (which
  ;; would move entries to other slots) waits for its end.
  (let* ((cell (or (rhash--storage table) (vector [] [])))
         (keys (aref cell 0)) (vals (aref cell 1)) (n (length keys))
         (hole rhash--hole)
         (i 0))
    (rhash--walk-mark table t)
    (unwind-protect
        (while (< i n)
          (let ((key (aref keys i)) (val (aref vals i)))
            (unless (or (eq key hole) (eq val hole))
              (funcall function key val)
              (setq keys (aref cell 0) vals (aref cell 1) n (length keys))))
          (setq i (1+ i)))
      (rhash--walk-mark table nil))
    nil))

;;;; Places

(gv-define-setter rhash-get (val key table &optional _default)
  `(rhash-put ,key ,val ,table))

;;;; Conversions

;; `rhash--pairs' builds fresh key and value lists with C primitives,
;; read at one instant; relinking their cells costs a few byte-code operations per entry,
;; much less than a `cons' called from the module for each.

(defun rhash-to-plist (table)
  "Return TABLE's entries as a fresh plist (K1 V1 K2 V2 ...).
The entries come in iteration order."
  (let* ((pairs (rhash--pairs table))
         (keys (car pairs))
         (k keys)
         (v (cdr pairs)))
    ;; Interleave the two fresh lists in place.
    (while k
      (let ((next-k (cdr k)) (next-v (cdr v)))
        (setcdr k v)
        (setcdr v next-k)
        (setq k next-k v next-v)))
    keys))

(defun rhash-to-alist (table)
  "Return TABLE's entries as a fresh alist ((K1 . V1) ...).
The entries come in iteration order."
  (let* ((pairs (rhash--pairs table))
         (keys (car pairs))
         (k keys)
         (v (cdr pairs)))
    ;; Each value cell becomes the pair (KEY . VALUE), hung on its key cell.
    (while k
      (let ((next-v (cdr v)))
        (setcdr v (car v))
        (setcar v (car k))
        (setcar k v)
        (setq k (cdr k) v next-v)))
    keys))

(defun rhash--check (table)
  "Signal `wrong-type-argument' unless TABLE is an rhash table."
  (unless (rhash-p table)
    (signal 'wrong-type-argument (list 'rhash-p table))))

(defun rhash-from-hash-table (hash-table)
  "Return a new rhash table with the entries of HASH-TABLE.
It has the same test and iterates in the same order.  (A weak
HASH-TABLE gives a table that is not weak.)"
  (unless (hash-table-p hash-table)
    (signal 'wrong-type-argument (list 'hash-table-p hash-table)))
  (let ((table (rhash-make :test (hash-table-test hash-table)
                           :size (hash-table-count hash-table))))
    (if (rhash--user-test-p hash-table)
        ;; A user test's functions run for each key put: they may change
        ;; HASH-TABLE, which is then read as this `maphash' loop reads it.
        (progn (maphash (lambda (k v) (rhash-put k v table)) hash-table)
               table)
      (let ((kv (rhash--hash-table-vectors hash-table)))
        (rhash--adopt table (aref kv 0) (aref kv 1))))))

(defun rhash-to-hash-table (table)
  "Return a new built-in hash table with the entries of rhash TABLE.
It has the same test and iterates in the same order."
  (rhash--check table)
  (let ((h (make-hash-table :test (rhash-test table) :size (rhash-count table))))
    (rhash-map (lambda (k v) (puthash k v h)) table)
    h))

(defun rhash-from-alist (alist &rest keyword-args)
  "Return a new rhash table holding the pairs of ALIST.
KEYWORD-ARGS are passed to `rhash-make'.  When a key occurs more
than once, the later value replaces the earlier one and the first
key object is kept, as with repeated `rhash-put'."
  (let* ((table (apply #'rhash-make keyword-args))
         (n (length alist))
         (keys (make-vector n nil))
         (vals (make-vector n nil))
         (i 0))
    (dolist (pair alist)
      (aset keys i (car pair))
      (aset vals i (cdr pair))
      (setq i (1+ i)))
    (rhash--adopt table keys vals)))

(defun rhash-from-plist (plist &rest keyword-args)
  "Return a new rhash table holding the pairs of PLIST.
KEYWORD-ARGS are passed to `rhash-make'.  Later duplicates replace
earlier values.  PLIST must have an even length."
  (unless (and (proper-list-p plist) (zerop (% (length plist) 2)))
    (signal 'wrong-type-argument (list 'plistp plist)))
  (let* ((table (apply #'rhash-make keyword-args))
         (n (/ (length plist) 2))
         (keys (make-vector n nil))
         (vals (make-vector n nil))
         (i 0))
    (while plist
      (aset keys i (car plist))
      (aset vals i (cadr plist))
      (setq plist (cddr plist) i (1+ i)))
    (rhash--adopt table keys vals)))

;;;; Bulk and set operations

;; `rhash-get-many', `rhash-put-many', `rhash-merge', `rhash-merge-with',
;; `rhash-union', `rhash-intersection', `rhash-difference', `rhash-equal',
;; `rhash-tally-into', `rhash-uniq', `rhash-compact' and `rhash-stats' are
;; module functions: each runs its whole loop in one call.  Where they
;; read a built-in hash table, they look keys up with `gethash', read
;; its entries with `rhash--hash-table-vectors' or convert it with
;; `rhash-from-hash-table': those paths are Lisp loops.

(defun rhash--hash-table-vectors (hash-table)
  "Return [KEYS VALUES], the entries of HASH-TABLE as two vectors.
Both are in HASH-TABLE's iteration order.  The bulk operations read
built-in hash tables through this `maphash' loop.  Lisp run by a
garbage collection during the loop may change HASH-TABLE: the vectors
hold what `maphash' visited, however many entries that is."
  (let* ((n (hash-table-count hash-table))
         (keys (make-vector n nil))
         (vals (make-vector n nil))
         (i 0))
    (maphash (lambda (k v)
               (when (= i n)
                 (setq keys (vconcat keys (make-vector (max n 8) nil))
                       vals (vconcat vals (make-vector (max n 8) nil))
                       n (length keys)))
               (aset keys i k)
               (aset vals i v)
               (setq i (1+ i)))
             hash-table)
    (if (< i n)
        (vector (substring keys 0 i) (substring vals 0 i))
      (vector keys vals))))

;; The Lisp loops the bulk operations replace, for the cases where a
;; built-in hash table is read while user Lisp runs between its entries
;; (a FUNCTION or PREDICATE, a user test's hash or compare function),
;; and for key lists such Lisp may change: that Lisp may change the
;; built-in table (or the list), and only `maphash' (`mapcar') reads it
;; as the loop does.  The module calls them in those cases only.

(defun rhash--user-test-p (table)
  "Non-nil if TABLE (rhash or built-in) has a user-defined test."
  (not (memq (if (rhash-p table) (rhash-test table) (hash-table-test table))
             '(eq eql equal))))

(defun rhash--each (function table)
  "Call FUNCTION with each key and value of TABLE (rhash or built-in)."
  (if (rhash-p table) (rhash-map function table) (maphash function table)))

(defun rhash--lookup (key table default)
  "KEY's value in TABLE (rhash or built-in), or DEFAULT."
  (if (rhash-p table) (rhash-get key table default) (gethash key table default)))

(defun rhash--merge-loop (function table source)
  "Put each entry of built-in SOURCE into TABLE, in a `maphash' loop.
With FUNCTION non-nil, a key TABLE holds gets (FUNCTION OLD NEW)."
  (maphash (lambda (k v)
             (if function
                 (let ((old (rhash-get k table rhash--hole)))
                   (rhash-put k (if (eq old rhash--hole) v (funcall function old v))
                              table))
               (rhash-put k v table)))
           source))

(defun rhash--filter-loop (a b keep)
  "`rhash-intersection' (KEEP non-nil) or `rhash-difference' of built-in A and B."
  (let ((r (rhash-make :test (hash-table-test a))))
    (maphash (lambda (k v)
               (when (eq keep (not (eq (rhash--lookup k b rhash--hole) rhash--hole)))
                 (rhash-put k v r)))
             a)
    r))

(defun rhash--union-loop (a b)
  "`rhash-union' of A and B, one of them built-in, as a Lisp loop."
  (let ((r (if (rhash-p a)
               ;; A's entries in order, new keys appended after them.
               (rhash-compact (rhash-copy a))
             (let ((r (rhash-make :test (hash-table-test a))))
               (maphash (lambda (k v) (rhash-put k v r)) a)
               r))))
    (rhash--each (lambda (k v)
                   (when (eq (rhash--lookup k a rhash--hole) rhash--hole)
                     (rhash-put k v r)))
                 b)
    r))

(defun rhash--equal-loop (a b predicate)
  "`rhash-equal' of built-in A and B under PREDICATE, as a Lisp loop."
  (and (= (hash-table-count a)
          (if (rhash-p b) (rhash-count b) (hash-table-count b)))
       (catch 'rhash--unequal
         (maphash (lambda (k v)
                    (let ((w (rhash--lookup k b rhash--hole)))
                      (unless (and (not (eq w rhash--hole)) (funcall predicate v w))
                        (throw 'rhash--unequal nil))))
                  a)
         t)))

(defun rhash--get-many-loop (keys table default)
  "`rhash-get-many' of the list KEYS in TABLE (DEFAULT if absent), by `mapcar'."
  (mapcar (lambda (k) (rhash--lookup k table default)) keys))

(defun rhash--put-many-loop (keys values table)
  "`rhash-put-many' of KEYS and VALUES into TABLE, as a `cl-mapc' loop."
  (cl-mapc (lambda (k v) (rhash-put k v table)) keys values)
  table)

(defun rhash--uniq-loop (sequence test)
  "`rhash-uniq' of SEQUENCE under the user TEST, as a `mapc' loop."
  (let ((seen (rhash-make :test test)) out)
    (mapc (lambda (x)
            (unless (rhash-contains-p x seen)
              (rhash-put x t seen)
              (push x out)))
          sequence)
    (nreverse out)))

(defun rhash--tally-loop (list table)
  "`rhash-tally-into' of LIST into TABLE, as a `mapc' loop."
  (mapc (lambda (x) (rhash-put x (1+ (rhash-get x table 0)) table)) list)
  table)

(defun rhash-tally (sequence &rest keyword-args)
  "Return a new rhash table counting the elements of SEQUENCE.
SEQUENCE is a list or a vector.  The table maps each distinct element
to its number of occurrences, in first-occurrence order.
KEYWORD-ARGS are as for `rhash-make', except that the test defaults
to `equal'.  See also `rhash-tally-into'.

\(fn SEQUENCE &rest KEYWORD-ARGS)"
  (rhash-tally-into
   sequence
   (apply #'rhash-make
          (if (rhash--key-arg :test keyword-args
                              (make-vector (length keyword-args) nil))
              keyword-args
            (append keyword-args '(:test equal))))))

;;;; Saving and loading

(unless (get 'rhash-file-error 'error-conditions)
  (define-error 'rhash-file-error "Not a readable rhash table file" 'file-error))

(defun rhash-save (table file)
  "Write TABLE to FILE and return FILE's expanded name.
TABLE is an rhash table of either storage, or a built-in hash table.
The file holds TABLE's test, its storage and its entries in
iteration order, in rhash's own format (docs/file-format.md):
versioned, checksummed, the same bytes on every Emacs; `rhash-load'
reads it back, with or without the module.

Keys and values must be plain data (see `rhash-plain-data-p'), else
this signals (wrong-type-argument rhash-plain-data-p X) before FILE
is touched.  Writing is atomic: the data goes to a temporary file in
FILE's directory, is flushed to disk and renamed over FILE, so an
error, \[keyboard-quit] or a crash leaves the old FILE as it was.  An
existing FILE keeps its permissions.  A user-defined test is saved by
its name.  An rhash table cannot be printed readably: save it instead."
  (let ((file (expand-file-name file)))
    (cond
     ((rhash-p table) (rhash--save-table table file))
     ((hash-table-p table)
      (let ((kv (rhash--hash-table-vectors table)))
        (rhash--save-vectors (hash-table-test table) 'lisp
                             (aref kv 0) (aref kv 1) file)))
     (t (signal 'wrong-type-argument (list 'rhash-p table))))))

(defun rhash-load (file &rest keyword-args)
  "Return a new rhash table read from FILE, as `rhash-save' wrote it.
The table has the saved test, storage and entries, in the saved
order.  KEYWORD-ARGS may give :storage (`lisp' or `native') to
override the saved storage.

A missing FILE signals `file-missing'.  A file that is not an rhash
table file, has an unknown format version, is truncated or fails its
checksum signals `rhash-file-error', whose data names the reason and
FILE; no table is made then.  If the saved test is a user-defined
one, define it (`define-hash-table-test') before loading.

\(fn FILE &rest KEYWORD-ARGS)"
  (let ((storage (plist-get keyword-args :storage))
        (rest keyword-args))
    (while rest
      (unless (and (eq (car rest) :storage) (cdr rest))
        (rhash--signal-error "Invalid argument list" (car rest)))
      (setq rest (cddr rest)))
    (let* ((file (expand-file-name file))
           (info (rhash--load-file file))
           (test (nth 0 info))
           (storage (or storage (nth 1 info)))
           (table (rhash-make :test test :size (nth 2 info) :storage storage))
           (loaded (nthcdr 3 info)))
      (if (eq storage 'native)
          (rhash--load-native table loaded)
        ;; Every object made here is kept: a collection while making them
        ;; would only mark the growing table again and again.
        (let* ((gc-cons-threshold (max gc-cons-threshold
                                        (* 8 (or (file-attribute-size
                                                  (file-attributes file))
                                                 0))))
               (kv (rhash--loaded-vectors loaded)))
          (when kv
            (rhash--adopt table (car kv) (cdr kv)))))
      table)))

;;;; Printing

(defun rhash--summary (table)
  "A short unreadable description of TABLE for printing.
It is built without the printer, which `print-unreadable-function'
must not re-enter."
  (concat "#<rhash " (symbol-name (rhash-test table)) " "
          (number-to-string (rhash-count table)) ">"))

;; `cl-typep' and `cl-check-type' know the type `rhash'.
(cl-deftype rhash () '(satisfies rhash-p))

;; Generic functions dispatch on rhash tables through their own
;; specializer `rhash' (they are user-ptr objects to `type-of').
(cl-generic-define-generalizer rhash--generalizer
  ;; Above the `type-of' generalizer (50), below `eql' and `head'.
  60
  ;; `fboundp': generic functions keep this test in their dispatchers after
  ;; `unload-feature' has removed `rhash-p' (and the methods).
  ;; In the Lisp fallback, where every hash table is an rhash table,
  ;; nothing dispatches on `rhash': hash tables keep their own methods.
  (lambda (name &rest _)
    `(and (bound-and-true-p rhash--module) (rhash-p ,name) 'rhash))
  (lambda (tag &rest _) (and (eq tag 'rhash) '(rhash))))

(cl-defmethod cl-generic-generalizers :extra "rhash" (specializer)
  "Support for the `rhash' specializer: rhash tables."
  (if (eq specializer 'rhash)
      (list rhash--generalizer)
    (cl-call-next-method)))

(cl-defmethod cl-print-object ((object rhash) stream)
  "Print rhash OBJECT to STREAM as a short summary (backtraces use this)."
  (princ (rhash--summary object) stream))

(defun rhash--print-unreadable (object _escapeflag)
  "Print OBJECT as a summary if it is an rhash table; else defer."
  (and (rhash-p object) (rhash--summary object)))

;; Emacs 29+ lets `prin1' print unreadable objects through a function;
;; rhash's goes in front of any other package's.  Advice on a nil value
;; would call nil, so a nil value becomes `ignore' (same meaning) first.
(defvar rhash--print-set-ignore nil
  "Non-nil if rhash replaced a nil `print-unreadable-function' by `ignore'.")

(when (and rhash--module (boundp 'print-unreadable-function))
  (unless (default-value 'print-unreadable-function)
    (setq-default print-unreadable-function #'ignore)
    (setq rhash--print-set-ignore t))
  (add-function :before-until (default-value 'print-unreadable-function)
                #'rhash--print-unreadable))

;;;; map.el

(cl-defmethod map-elt ((map rhash) key &optional default _testfn)
  "Return the value of KEY in rhash MAP, or DEFAULT (TESTFN is ignored)."
  (rhash-get key map default))

(cl-defmethod map-put! ((map rhash) key value &optional _testfn)
  "Associate KEY with VALUE in rhash MAP (TESTFN is ignored)."
  (rhash-put key value map))

(cl-defmethod map-insert ((map rhash) key value)
  "Return a copy of rhash MAP with KEY associated with VALUE."
  (let ((copy (rhash-copy map)))
    (rhash-put key value copy)
    copy))

(cl-defmethod map-delete ((map rhash) key)
  "Remove KEY from rhash MAP and return MAP."
  (rhash-remove key map)
  map)

(cl-defmethod map-keys ((map rhash))
  "Return the keys of rhash MAP in iteration order."
  (rhash-keys map))

(cl-defmethod map-values ((map rhash))
  "Return the values of rhash MAP in iteration order."
  (rhash-values map))

(cl-defmethod map-pairs ((map rhash))
  "Return the entries of rhash MAP as an alist in iteration order."
  (rhash-to-alist map))

(cl-defmethod map-length ((map rhash))
  "Return the number of entries in rhash MAP."
  (rhash-count map))

(cl-defmethod map-copy ((map rhash))
  "Return a copy of rhash MAP."
  (rhash-copy map))

(cl-defmethod map-apply (function (map rhash))
  "Return the results of FUNCTION on each key and value of rhash MAP."
  (let (result)
    (rhash-map (lambda (k v) (push (funcall function k v) result)) map)
    (nreverse result)))

(cl-defmethod map-do (function (map rhash))
  "Call FUNCTION on each key and value of rhash MAP; return nil."
  (rhash-map function map))

(cl-defmethod mapp ((_map rhash))
  "Rhash tables are maps."
  t)

(cl-defmethod map-empty-p ((map rhash))
  "Return non-nil if rhash MAP has no entries."
  (rhash-empty-p map))

(cl-defmethod map-contains-key ((map rhash) key &optional _testfn)
  "Return non-nil if rhash MAP has KEY (TESTFN is ignored)."
  (rhash-contains-p key map))

(cl-defmethod map-into (map (_type (eql rhash)))
  "Convert MAP into an rhash table with keys compared with `equal'."
  (map-into map (list 'rhash :test 'equal :size (map-length map))))

(cl-defmethod map-into (map (type (head rhash)))
  "Convert MAP into an rhash table made with the keyword args in TYPE."
  (let ((table (apply #'rhash-make (cdr type))))
    (map-do (lambda (k v) (rhash-put k v table)) map)
    table))

;;;; Unloading

(defun rhash-unload-function ()
  "Undo what loading rhash did, for `unload-feature'.
Remove rhash's hook, printer and type; return nil, so that
`unload-feature' goes on to remove the functions and methods.  The
module stays in the process (Emacs cannot unload one); a later
`(require \='rhash)' defines its functions again."
  (remove-hook 'post-gc-hook #'rhash--flush-cache)
  (remove-variable-watcher 'debug-on-signal #'rhash--watch-signals)
  (remove-variable-watcher 'signal-hook-function #'rhash--watch-signals)
  (when (boundp 'print-unreadable-function)
    (remove-function (default-value 'print-unreadable-function)
                     #'rhash--print-unreadable)
    (when (and rhash--print-set-ignore
               (eq (default-value 'print-unreadable-function) #'ignore))
      (setq-default print-unreadable-function nil)))
  (put 'rhash 'cl-deftype-handler nil)
  (put 'rhash-get 'gv-expander nil)
  (dolist (prop '(error-conditions error-message))
    (dolist (err '(rhash-unsupported rhash-file-error rhash--no-module))
      (put err prop nil)))
  (dolist (f rhash--module-arities)
    (when (eq (get (car f) 'compiler-macro) #'rhash--check-arity)
      (put (car f) 'compiler-macro nil)))
  (when (featurep 'rhash-fallback)
    (unload-feature 'rhash-fallback t))
  nil)

;;;; Without the module

;; The Lisp fallback replaces every function above that needs the module
;; (and the Lisp ones built on them) by its own, on built-in hash tables.
(unless rhash--module
  (load (expand-file-name "rhash-fallback" rhash--directory) nil t)
  ;; One message per session.
  (unless (get 'rhash--fallback-reason 'announced)
    (put 'rhash--fallback-reason 'announced t)
    (message "rhash runs in Lisp without its module (slower): %s"
             rhash--fallback-reason)))

(provide 'rhash)
;;; rhash.el ends here
