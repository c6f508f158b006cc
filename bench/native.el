;;; native.el --- Native storage and files: GC, memory, speed  -*- lexical-binding: t; -*-

;; Run by `make bench' (bench/run.sh), or alone:
;;   emacs -Q --batch -L lisp -l bench/native.el -f rhash-bench-native N
;; N entries (default 10^6): keys "id-%08x-4a6b-9c2d-%d", values
;; "~/org/notes/file-%d.org" (i mod 5000) or fixnums.  Each measurement
;; starts from a fresh Emacs (a child process), so one table's garbage
;; never weighs on another's GC.  Prints one row per measurement with
;; times, ratios and the target they answer to.

;;; Code:

(require 'rhash)
(require 'json)

(defconst rhash-bench-native--file (or load-file-name buffer-file-name)
  "This file, for the child Emacsen.")

(defun rhash-bench-native--key (i)
  "Key I of the benchmark."
  (format "id-%08x-4a6b-9c2d-%d" (logand (* i 2654435761) #xffffffff) i))

(defun rhash-bench-native--val (i)
  "String value I of the benchmark."
  (format "~/org/notes/file-%d.org" (% i 5000)))

(defun rhash-bench-native--rss ()
  "This process's resident set size in KiB."
  (with-temp-buffer
    (insert-file-contents "/proc/self/status")
    (re-search-forward "VmRSS:[ \t]+\\([0-9]+\\)")
    (string-to-number (match-string 1))))

(defun rhash-bench-native--gc-time ()
  "CPU seconds of one full `garbage-collect' (median of 5)."
  (garbage-collect)
  (let (ts)
    (dotimes (_ 5)
      (let ((t0 (float-time)))
        (garbage-collect)
        (push (- (float-time) t0) ts)))
    (nth 2 (sort ts #'<))))

(defun rhash-bench-native--fill (kind n fixnums)
  "A table of KIND (builtin, lisp or native) with N entries.
Values are fixnums when FIXNUMS is non-nil."
  (let ((tb (pcase kind
              ('builtin (make-hash-table :test 'equal :size n))
              ('lisp (rhash-make :test 'equal :size n))
              ('native (rhash-make :test 'equal :size n :storage 'native)))))
    (dotimes (i n)
      (let ((k (rhash-bench-native--key i))
            (v (if fixnums i (rhash-bench-native--val i))))
        (if (hash-table-p tb) (puthash k v tb) (rhash-put k v tb))))
    tb))

(defun rhash-bench-native-child ()
  "In a child Emacs: one measurement, printed as a Lisp form."
  (let* ((args (prog1 command-line-args-left
                 ;; (Consumed: Emacs would visit them as files.)
                 (setq command-line-args-left nil)))
         (what (intern (nth 0 args)))
         (kind (intern (nth 1 args)))
         (n (string-to-number (nth 2 args)))
         (file (nth 3 args))
         (result
          (pcase what
            ('gc (let* ((base (rhash-bench-native--gc-time))
                        (rss0 (rhash-bench-native--rss))
                        (tb (unless (eq kind 'none)
                              (rhash-bench-native--fill kind n (equal (nth 4 args) "fix")))))
                   (garbage-collect)
                   (list :rss (- (rhash-bench-native--rss) rss0)
                         :count (if (hash-table-p tb) (hash-table-count tb)
                                  (if tb (rhash-count tb) 0))
                         :gc (rhash-bench-native--gc-time) :base base
                         ;; The same heap without the table: what the fill
                         ;; left behind, not the table, costs the rest.
                         :gc-cleared (progn (if (hash-table-p tb) (clrhash tb) (when tb (rhash-clear tb)))
                                            (rhash-bench-native--gc-time)))))
            ('save (let ((tb (rhash-bench-native--fill (if (eq kind 'json) 'builtin kind) n nil)))
                     (garbage-collect)
                     (let ((t0 (float-time)))
                       (pcase kind
                         ('builtin (with-temp-file file
                                     (let ((print-length nil) (print-level nil))
                                       (prin1 tb (current-buffer)))))
                         ('json (with-temp-file file
                                  (insert (json-serialize tb))))
                         (_ (rhash-save tb file)))
                       (list :time (- (float-time) t0)
                             :size (file-attribute-size (file-attributes file))))))
            ('load (garbage-collect)
                   (let ((t0 (float-time)) (gcs gcs-done))
                     (pcase kind
                       ('builtin (with-temp-buffer
                                   (insert-file-contents file)
                                   (read (current-buffer))))
                       ('json (with-temp-buffer
                                (insert-file-contents file)
                                (json-parse-buffer :object-type 'hash-table)))
                       (_ (rhash-load file :storage kind)))
                     (list :time (- (float-time) t0) :gcs (- gcs-done gcs))))
            ('ops (let* ((keys (make-vector n nil))
                         (gc-cons-threshold (* 1024 1024 1024)))
                    (dotimes (i n) (aset keys i (rhash-bench-native--key i)))
                    (let* ((s (rhash-make :test 'equal :storage kind :size n))
                           (f (rhash-make :test 'equal :storage kind :size n))
                           (t0 (float-time)))
                      (dotimes (i n) (rhash-put (aref keys i) (rhash-bench-native--val i) s))
                      (let ((t1 (float-time)))
                        (dotimes (i n) (rhash-put (aref keys i) i f))
                        (let ((t2 (float-time)))
                          (dotimes (i n) (rhash-get (aref keys i) f))
                          (let ((t3 (float-time)))
                            (dotimes (i n) (rhash-get (aref keys i) s))
                            (let ((t4 (float-time)))
                              (rhash-keys s)
                              (let ((t5 (float-time)))
                                (rhash-to-alist s)
                                (list :put-str (- t1 t0) :put-fix (- t2 t1)
                                      :get-fix (- t3 t2) :get-str (- t4 t3)
                                      :keys (- t5 t4) :alist (- (float-time) t5))))))))))
            ('builtin-ops
             (let* ((h (rhash-bench-native--fill 'builtin n nil))
                    (gc-cons-threshold (* 1024 1024 1024))
                    (t0 (float-time)))
               (hash-table-keys h)
               (let ((t1 (float-time)) acc)
                 (maphash (lambda (k v) (push (cons k v) acc)) h)
                 (list :keys (- t1 t0) :alist (- (float-time) t1))))))))
    (prin1 (append result (list :module (plist-get (rhash-module-info) :module))))
    (terpri)))

(defun rhash-bench-native--run (&rest args)
  "Run one measurement ARGS in a fresh Emacs; its result plist."
  (with-temp-buffer
    (apply #'call-process (expand-file-name invocation-name invocation-directory)
           nil t nil "-Q" "--batch" "-L" (file-name-directory (locate-library "rhash"))
           "-L" (file-name-directory (or (locate-library (concat "rhash-module" module-file-suffix) t)
                                         (locate-library "rhash")))
           "-l" rhash-bench-native--file
           "-f" "rhash-bench-native-child" (mapcar (lambda (a) (format "%s" a)) args))
    (goto-char (point-min))
    (let (form)
      (while (and (not form) (re-search-forward "^(" nil t))
        (goto-char (match-beginning 0))
        (setq form (ignore-errors (read (current-buffer)))))
      form)))

(defun rhash-bench-native ()
  "Print the native storage and file rows for N entries (argument)."
  (let* ((n (string-to-number (or (car command-line-args-left) "1000000")))
         (dir (make-temp-file "rhash-bench-native" t))
         (f (lambda (name) (expand-file-name name dir))))
    (setq command-line-args-left nil)
    (unwind-protect
        (let* ((none (rhash-bench-native--run 'gc 'none n))
               (base (plist-get none :gc)))
          (unless (plist-get none :module)
            (error "The children run without the rhash module: %S" (rhash-module-info)))
          (princ (format "Emacs %s, %d entries (keys \"id-%%08x-4a6b-9c2d-%%d\")\n" emacs-version n))
          (princ "| measurement | time | ratio | target |\n|---|---|---|---|\n")
          (dolist (kind '(builtin lisp native))
            (dolist (vals '(str fix))
              (let ((r (rhash-bench-native--run 'gc kind n "-" vals)))
                (princ (format "| full GC, %s table, string -> %s | %.1f ms (none: %.1f ms; same heap, table cleared: %.1f ms) | %.2fx none, %.2fx cleared | native <= 1.1x |\n"
                               kind vals (* 1000 (plist-get r :gc)) (* 1000 base)
                               (* 1000 (plist-get r :gc-cleared))
                               (/ (plist-get r :gc) base) (/ (plist-get r :gc) (plist-get r :gc-cleared))))
                (when (eq vals 'str)
                  (princ (format "| RSS growth, %s table | %d MiB | | native <= 0.6x built-in |\n"
                                 kind (/ (plist-get r :rss) 1024)))))))
          (let ((b (rhash-bench-native--run 'builtin-ops 'builtin n))
                (l (rhash-bench-native--run 'ops 'lisp n))
                (v (rhash-bench-native--run 'ops 'native n)))
            (dolist (row '((:put-str "rhash-put, fresh string keys, string values" "<= 1.3x Lisp")
                           (:put-fix "rhash-put, fresh string keys, fixnum values" "")
                           (:get-fix "rhash-get -> fixnum" "<= 1.0x Lisp")
                           (:get-str "rhash-get -> 25-char string (a fresh copy)" "<= 1.5x Lisp")))
              (princ (format "| %s | native %.0f ns, Lisp %.0f ns | %.2fx Lisp | %s |\n"
                             (nth 1 row)
                             (/ (* 1e9 (plist-get v (car row))) n) (/ (* 1e9 (plist-get l (car row))) n)
                             (/ (plist-get v (car row)) (plist-get l (car row))) (nth 2 row))))
            (dolist (row '((:keys "rhash-keys (built-in: hash-table-keys)")
                           (:alist "rhash-to-alist (built-in: a maphash loop)")))
              (princ (format "| %s | native %.0f ms, built-in %.0f ms | %.2fx built-in | <= 1.5x |\n"
                             (nth 1 row) (* 1000 (plist-get v (car row))) (* 1000 (plist-get b (car row)))
                             (/ (plist-get v (car row)) (plist-get b (car row)))))))
          (let* ((p (rhash-bench-native--run 'save 'builtin n (funcall f "t.el")))
                 (sl (rhash-bench-native--run 'save 'lisp n (funcall f "l.rht")))
                 (sn (rhash-bench-native--run 'save 'native n (funcall f "n.rht")))
                 (r (rhash-bench-native--run 'load 'builtin n (funcall f "t.el")))
                 (ll (rhash-bench-native--run 'load 'lisp n (funcall f "n.rht")))
                 (ln (rhash-bench-native--run 'load 'native n (funcall f "n.rht"))))
            (dolist (row (list (list "rhash-save, Lisp table" sl p "prin1 to a file" ">= 10x faster")
                               (list "rhash-save, native table" sn p "prin1 to a file" ">= 10x faster")
                               (list "rhash-load into Lisp storage" ll r "read" ">= 10x faster")
                               (list "rhash-load into native storage" ln r "read" ">= 10x faster")))
              (let ((mine (nth 1 row)) (theirs (nth 2 row)))
                (princ (format "| %s | %.3f s, %s %.3f s | %.1fx faster | %s |\n"
                               (nth 0 row) (plist-get mine :time) (nth 3 row) (plist-get theirs :time)
                               (/ (plist-get theirs :time) (plist-get mine :time)) (nth 4 row)))))
            (princ (format "| file size | %.1f MB, printed %.1f MB | %.2fx | <= 1x |\n"
                           (/ (plist-get sn :size) 1e6) (/ (plist-get p :size) 1e6)
                           (/ (float (plist-get sn :size)) (plist-get p :size))))
            (princ (format "| GCs during rhash-load into native storage | %d | | <= 1 |\n"
                           (plist-get ln :gcs)))
            (when (fboundp 'json-serialize)
              ;; JSON of the same data: `json-serialize' of the built-in
              ;; table into a file, then `json-parse-buffer'.
              (let ((js (rhash-bench-native--run 'save 'json n (funcall f "t.json"))))
                (princ (format "| rhash-save native vs json-serialize to a file | %.3f s vs %.3f s | %.1fx faster | |\n"
                               (plist-get sn :time) (plist-get js :time)
                               (/ (plist-get js :time) (plist-get sn :time)))))
              (let ((j (rhash-bench-native--run 'load 'json n (funcall f "t.json"))))
                (princ (format "| rhash-load native vs json-parse-buffer | %.3f s vs %.3f s | %.1fx faster | >= 2x (30.1) |\n"
                               (plist-get ln :time) (plist-get j :time)
                               (/ (plist-get j :time) (plist-get ln :time))))))))
      (delete-directory dir t))))

(provide 'native)
;;; native.el ends here
