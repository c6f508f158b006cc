;;; rhash-persist-test.el --- rhash-save, rhash-load, plain data  -*- lexical-binding: t; -*-

;;; Commentary:

;; Round trips through files (content, test, order, multibyteness, float
;; bits), the errors of the contract, atomicity (no temporary file left,
;; the old file intact after an error, a quit or a killed Emacs), kept
;; permissions, and hostile files.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)
(require 'rhash-data)

(defvar rhash--module)

(defconst rhash-persist-test--nans
  (list 0.0e+NaN -0.0e+NaN
        ;; A NaN with another payload, where the reader can make one.
        (ignore-errors (read "1.5e+NaN")))
  "NaNs of different signs and payloads.")

(defun rhash-persist-test--pool ()
  "Plain keys and values of every kind, awkward ones included."
  (append
   (list nil t 'foo :kw 'with\ space (intern "é-sym")
         0 1 -1 most-positive-fixnum most-negative-fixnum
         (1+ most-positive-fixnum) (1- most-negative-fixnum)
         (expt 2 200) (- (expt 3 100))
         0.0 -0.0 1.5 -2.25e300 1.0e+INF -1.0e+INF
         "" "ascii" (string-to-multibyte "ascii") "é" "日本語"
         (string-to-unibyte "\377\200") (string-to-multibyte "\377")
         (propertize "props" 'face 'bold)
         '(1 2 3) '(a . b) '(1 (2 (3 . 4)) [5 "six"]) '((k . v) (k2 . v2))
         [] [1 [2 [3]] "s" nil] '(nil) (list "x" 1.0 'y))
   (delq nil (copy-sequence rhash-persist-test--nans))))

(ert-deftest rhash-persist-round-trip-every-kind ()
  "Every kind of plain data comes back equal, in order, bits and multibyteness kept."
  (rhash-data-with-dir dir
    (dolist (test '(eq eql equal))
      (let* ((pool (rhash-persist-test--pool))
             (table (rhash-make :test test))
             (file (expand-file-name (format "t-%s.rht" test) dir))
             (i 0))
        (dolist (k pool)
          (rhash-put k (nth (% (* 7 i) (length pool)) pool) table)
          (setq i (1+ i)))
        ;; Removals leave free places: the file holds the live entries.
        (rhash-remove 'foo table)
        (rhash-remove 0 table)
        (should (equal (rhash-save table file) file))
        (let ((back (rhash-load file)))
          (should (rhash-p back))
          (should (eq (rhash-test back) test))
          (should (= (rhash-count back) (rhash-count table)))
          (let ((a (rhash-data-entries table))
                (b (rhash-data-entries back)))
            (should (= (length a) (length b)))
            (cl-loop for (k1 . v1) in a for (k2 . v2) in b
                     do (should (rhash-data-same k1 k2))
                     (should (rhash-data-same v1 v2))))
          ;; Strings come back without text properties.
          (should-not (text-properties-at
                       0 (car (member "props" (rhash-keys back))))))))))

(ert-deftest rhash-persist-built-in-table ()
  "A built-in hash table saves; it loads back as an rhash table of its test."
  (rhash-data-with-dir dir
    (let ((h (make-hash-table :test 'equal))
          (file (expand-file-name "h.rht" dir)))
      (dotimes (i 100) (puthash (format "k%d" i) (list i (* i 1.5)) h))
      (remhash "k50" h)
      (rhash-save h file)
      (let ((back (rhash-load file)))
        (should (eq (rhash-test back) 'equal))
        (should (equal (rhash-data-entries back)
                       (rhash-data-entries h)))))))

(ert-deftest rhash-persist-empty-and-large ()
  "An empty table and a table of 20000 entries round-trip."
  (rhash-data-with-dir dir
    (let ((file (expand-file-name "e.rht" dir))
          (big (rhash-make :test 'equal)))
      (rhash-save (rhash-make :test 'eq) file)
      (let ((back (rhash-load file)))
        (should (eq (rhash-test back) 'eq))
        (should (rhash-empty-p back)))
      (dotimes (i 20000)
        (rhash-put (format "id-%08x-%d" (* i 7919) i) (format "~/org/file-%d.org" (% i 500)) big))
      (rhash-save big file)
      (should (equal (rhash-data-entries (rhash-load file))
                     (rhash-data-entries big))))))

(ert-deftest rhash-persist-user-test ()
  "A user-defined test is saved by name and must be defined when loading."
  (rhash-data-with-dir dir
    (define-hash-table-test 'rhash-persist-ci
      (lambda (a b) (string= (downcase a) (downcase b)))
      (lambda (k) (sxhash-equal (downcase k))))
    (let ((table (rhash-make :test 'rhash-persist-ci))
          (file (expand-file-name "u.rht" dir)))
      (rhash-put "Abc" 1 table)
      (rhash-save table file)
      (let ((back (rhash-load file)))
        (should (eq (rhash-test back) 'rhash-persist-ci))
        (should (equal (rhash-get "ABC" back) 1)))
      (put 'rhash-persist-ci 'hash-table-test nil)
      (should-error (rhash-load file)))))

(ert-deftest rhash-persist-not-plain ()
  "Keys or values that are not plain data signal before FILE is touched."
  (rhash-data-with-dir dir
    (let ((file (expand-file-name "np.rht" dir))
          (table (rhash-make :test 'equal)))
      (with-temp-file file (insert "old contents"))
      (dolist (bad (list (current-buffer) (make-marker) (make-symbol "unint")
                         (make-bool-vector 3 t) (make-hash-table) (symbol-function 'car)
                         (record 'foo 1) (list 1 (make-marker))))
        (rhash-clear table)
        (rhash-put "ok" 1 table)
        (rhash-put "bad" bad table)
        (let ((err (should-error (rhash-save table file)
                                 :type 'wrong-type-argument)))
          (should (eq (nth 1 err) 'rhash-plain-data-p)))
        (should (equal (with-temp-buffer (insert-file-contents file) (buffer-string))
                       "old contents"))
        (should (equal (directory-files dir nil "\\`[^.]") '("np.rht")))
        (should (equal (directory-files dir nil "rhash-tmp") nil))))))

(ert-deftest rhash-persist-circular ()
  "A circular structure signals `circular-list'."
  (rhash-data-with-dir dir
    (let ((file (expand-file-name "c.rht" dir))
          (table (rhash-make :test 'equal))
          (l (list 1 2 3))
          (car-loop (list 1)))
      (setcdr (cddr l) l)
      (setcar car-loop car-loop)
      (dolist (bad (list l car-loop))
        (rhash-clear table)
        (rhash-put 'k bad table)
        (should-error (rhash-save table file) :type 'circular-list)
        (should-not (file-exists-p file))))))

(ert-deftest rhash-persist-plain-data-p ()
  "`rhash-plain-data-p' says what the contract says."
  (dolist (x (rhash-persist-test--pool))
    (should (eq (rhash-plain-data-p x) t)))
  (let ((l (list 1 2)) (deep nil))
    (setcdr (cdr l) l)
    (dotimes (_ 10001) (setq deep (list deep)))
    (dolist (x (list (make-marker) (current-buffer) (make-symbol "u") (symbol-function 'car)
                     (make-bool-vector 1 nil) (make-hash-table) (record 'r)
                     l deep (vector (make-marker)) (cons 1 (make-marker))))
      (should (eq (rhash-plain-data-p x) nil))))
  ;; Exactly the limit is fine; a long cdr chain is not nesting.
  (let ((deep nil) (deepv nil))
    (dotimes (_ 10000) (setq deep (list deep) deepv (vector deepv)))
    (should (rhash-plain-data-p deep))
    (should (rhash-plain-data-p deepv))
    (should-not (rhash-plain-data-p (list deep)))
    (should-not (rhash-plain-data-p (vector deepv)))
    ;; A list's tail is at the list's own depth.
    (should (rhash-plain-data-p (cons 1 deepv)))
    ;; What passes saves and loads back.
    (rhash-data-with-dir dir
      (let ((table (rhash-make :test 'equal))
            (file (expand-file-name "deep.rht" dir)))
        (rhash-put deep deepv table)
        (rhash-save table file)
        (should (= (rhash-count (rhash-load file)) 1)))))
  (should (rhash-plain-data-p (number-sequence 1 100000))))

(ert-deftest rhash-persist-missing-and-bad-files ()
  "A missing file signals `file-missing'; a damaged one `rhash-file-error'."
  (rhash-data-with-dir dir
    (let ((file (expand-file-name "m.rht" dir))
          (table (rhash-make :test 'equal)))
      (should-error (rhash-load file) :type 'file-missing)
      (dotimes (i 5) (rhash-put (format "k%d" i) (vector i "v" 1.5) table))
      (rhash-save table file)
      (let* ((bytes (with-temp-buffer
                      (set-buffer-multibyte nil)
                      (insert-file-contents-literally file)
                      (buffer-string)))
             (n (length bytes))
             (bad (expand-file-name "bad.rht" dir)))
        (cl-flet ((try (content)
                    (let ((coding-system-for-write 'binary))
                      (write-region content nil bad nil 'silent))
                    (let ((err (should-error (rhash-load bad) :type 'rhash-file-error)))
                      (should (member bad err))
                      (should (file-error-p-test err)))))
          ;; Every truncation point.
          (dotimes (i n) (try (substring bytes 0 i)))
          ;; Every single-bit flip of every byte.
          (dotimes (i n)
            (dotimes (b 8)
              (let ((copy (copy-sequence bytes)))
                (aset copy i (logxor (aref copy i) (ash 1 b)))
                (try copy))))
          ;; Other files.
          (try "not an rhash file at all")
          (try (concat bytes "x")))))))

(defun file-error-p-test (err)
  "Non-nil when ERR's symbol is a `file-error'."
  (memq 'file-error (get (car err) 'error-conditions)))

(ert-deftest rhash-persist-permissions-kept ()
  "Saving over an existing file keeps its permissions."
  (rhash-data-with-dir dir
    (let ((file (expand-file-name "p.rht" dir))
          (table (rhash-make)))
      (rhash-put 1 2 table)
      (rhash-save table file)
      (set-file-modes file #o600)
      (rhash-save table file)
      (should (= (file-modes file) #o600))
      (set-file-modes file #o640)
      (rhash-save table file)
      (should (= (file-modes file) #o640)))))

(ert-deftest rhash-persist-no-partial-after-error ()
  "A save into a missing directory signals and leaves nothing behind."
  (rhash-data-with-dir dir
    (let ((table (rhash-make)))
      (rhash-put 1 2 table)
      (should-error (rhash-save table (expand-file-name "no/such/dir/x.rht" dir))
                    :type 'file-error)
      (should (equal (directory-files dir nil "\\`[^.]") nil)))))

(ert-deftest rhash-persist-kill-mid-save ()
  "An Emacs killed while it saves leaves the old file intact."
  (skip-unless rhash--module)
  (rhash-data-with-dir dir
    (let* ((file (expand-file-name "k.rht" dir))
           (old (rhash-make :test 'equal))
           (emacs (expand-file-name invocation-name invocation-directory))
           (lib (file-name-directory (locate-library "rhash")))
           (mod (file-name-directory (locate-library (concat "rhash-module" module-file-suffix) t))))
      (rhash-put "old" 'contents old)
      (rhash-save old file)
      (let ((proc (start-process
                   "rhash-saver" nil emacs "-Q" "--batch" "-L" lib "-L" mod
                   "--eval"
                   (format "%S"
                           `(progn
                              (require 'rhash)
                              (let ((tb (rhash-make :test 'equal)))
                                (dotimes (i 300000)
                                  (rhash-put (format "key-%d" i) (make-string 40 ?x) tb))
                                (princ "ready\n")
                                (while t (rhash-save tb ,file))))))))
        (unwind-protect
            (progn
              ;; Let it build and start saving, then kill it at some point.
              (let ((deadline (+ (float-time) 120)))
                (while (and (process-live-p proc)
                            (< (float-time) deadline)
                            (not (cl-some (lambda (f) (string-match-p "rhash-tmp" f))
                                          (directory-files dir))))
                  (sleep-for 0.01)))
              ;; Killed while a temporary file is being written.
              (should (process-live-p proc))
              (signal-process proc 'SIGKILL)
              (while (process-live-p proc) (sleep-for 0.05)))
          (when (process-live-p proc) (delete-process proc))))
      ;; The file is either the old table or a complete new one.
      (let ((back (rhash-load file)))
        (should (or (equal (rhash-get "old" back) 'contents)
                    (= (rhash-count back) 300000)))))))


(ert-deftest rhash-persist-targets ()
  "A symbolic link is followed; a directory is refused; bad keywords signal."
  (rhash-data-with-dir dir
    (let ((table (rhash-make))
          (file (expand-file-name "t.rht" dir))
          (link (expand-file-name "link.rht" dir)))
      (rhash-put 1 2 table)
      (rhash-save table file)
      (make-symbolic-link file link)
      (rhash-put 3 4 table)
      (should (equal (rhash-save table link) link))
      (should (file-symlink-p link))
      (should (= (rhash-count (rhash-load file)) 2))
      (let ((err (should-error (rhash-save table dir) :type 'file-error)))
        (should (member "Not a regular file" err)))
      (should (file-directory-p dir))
      (should (equal (sort (directory-files dir nil "\\`[^.]") #'string<) '("link.rht" "t.rht")))
      (should-error (rhash-load file :bogus 1) :type 'error)
      (should-error (rhash-load file :storage) :type 'error))))

(provide 'rhash-persist-test)
;;; rhash-persist-test.el ends here
