;;; rhash-robust-test.el --- Never crash, never leak  -*- lexical-binding: t; -*-

;;; Commentary:

;; Lifetime (dropped tables are reclaimed, memory stays bounded),
;; re-entrancy, non-local exits, hostile input and Lisp threads.
;; Expectations come from the built-in tables of the running Emacs
;; wherever they have an equivalent.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)

(declare-function rhash--release-stats "rhash-module" ())
(declare-function rhash--stats "rhash-module" (table))

(defun rhash-robust--churn-stack (n)
  "Recurse N deep to overwrite stale stack slots (the GC scans the stack)."
  (if (> n 0) (1+ (rhash-robust--churn-stack (1- n))) 0))

(defun rhash-robust--collect ()
  "Collect garbage thoroughly, releasing references dropped tables queued."
  (rhash-robust--churn-stack 600)
  (garbage-collect)
  (rhash-p nil)                         ; any rhash call frees the queue
  (garbage-collect))

(defun rhash-robust--eventually (pred)
  "Non-nil if PRED holds after at most 10 rounds of collection.
Callers churn the stack from their own frame first: a stale slot inside
this function's frame would otherwise keep an object alive throughout."
  (let ((n 0))
    (while (and (< n 10) (not (funcall pred)))
      (rhash-robust--collect)
      (setq n (1+ n)))
    (funcall pred)))

(defun rhash-robust--rss-kb ()
  "Resident set size of this Emacs in KiB (Linux), or nil."
  (when (file-readable-p "/proc/self/statm")
    (with-temp-buffer
      (insert-file-contents "/proc/self/statm")
      (* 4 (nth 1 (mapcar #'string-to-number (split-string (buffer-string))))))))

(defun rhash-robust--consistent-p (table)
  "Non-nil if TABLE's count matches its entries and every key is found."
  (let ((n 0) (ok t))
    (rhash-map (lambda (k v)
                 (setq n (1+ n))
                 (unless (eq (rhash-get k table (make-symbol "missing")) v)
                   (setq ok nil)))
               table)
    (and ok (= n (rhash-count table)) (= n (length (rhash-keys table))))))

;;;; Lifetime

(defun rhash-robust--drop-table (watch)
  "Make a table holding a fresh value, register the value in WATCH, drop both."
  (let ((table (rhash-make :test 'equal))
        (value (make-string 100 ?v)))
    (rhash-put (copy-sequence "key") value table)
    (puthash value t watch)
    nil))

(ert-deftest rhash-robust-dropped-table-contents-collectable ()
  ;; The module's global references (the Lisp fallback has none).
  (skip-unless rhash--module)
  (let ((watch (make-hash-table :test 'eq :weakness 'key)))
    (dotimes (_ 20) (rhash-robust--drop-table watch))
    (should (= (hash-table-count watch) 20))
    (rhash-robust--churn-stack 600)
    (should (rhash-robust--eventually (lambda () (= (hash-table-count watch) 0))))))

(defun rhash-robust--round (n)
  "Make and drop N tables with 10 fresh keys and values each."
  (dotimes (_ n)
    (let ((table (rhash-make :test 'equal)))
      (dotimes (i 10)
        (rhash-put (format "key-%d-%s" i (make-string 20 ?k)) (make-vector 8 i) table)))))

(ert-deftest rhash-robust-memory-bounded ()
  ;; The module's global references (the Lisp fallback has none).
  (skip-unless rhash--module)
  ;; Bound: a dropped table is finalized by the next GC, which queues its
  ;; two global references; the next rhash call frees them, and the GC
  ;; after that reclaims the vectors and contents.  So at most two rounds'
  ;; worth of tables are alive at once, whatever the number of rounds:
  ;; memory after 20 rounds must not exceed memory after 4 by more than
  ;; a couple of rounds' allocation (~1 MB per round of 500 tables here).
  (let* ((stats0 (rhash--release-stats))
         (rounds 20) (per-round 500)
         rss-early rss-late)
    (dotimes (r rounds)
      (rhash-robust--round per-round)
      (rhash-robust--collect)
      (when (= r 3) (setq rss-early (rhash-robust--rss-kb))))
    (rhash-robust--collect)
    (setq rss-late (rhash-robust--rss-kb))
    (let* ((stats (rhash--release-stats))
           (released (- (cdr stats) (cdr stats0))))
      (message "rhash lifetime: %d tables dropped, %d global refs released, \
%d pending; RSS after round 4: %s KiB, after round %d: %s KiB"
               (* rounds per-round) released (car stats) rss-early rounds rss-late)
      ;; Two references (key and value vectors) per table; allow a few
      ;; tables still held by conservative stack scanning.
      (should (>= released (* 2 (- (* rounds per-round) 50))))
      (should (<= (car stats) 2)))
    ;; (Valgrind's shadow memory makes RSS meaningless: test/valgrind.sh.)
    (when (and rss-early rss-late (not (getenv "RHASH_NO_RSS_CHECK")))
      (should (< (- rss-late rss-early) (* 8 1024))))))

(defun rhash-robust--drop-self-referencing (watch)
  "Make a table whose value refers to the table itself; watch the table."
  (let ((table (rhash-make)))
    (rhash-put 'self (list 'x table) table)
    (puthash table t watch)
    nil))

(defun rhash-robust--clear-watched (watch)
  "Clear every rhash table that is a key of WATCH."
  (maphash (lambda (table _) (rhash-clear table)) watch)
  nil)

(ert-deftest rhash-robust-cycle-needs-clear ()
  ;; The module's global references (the Lisp fallback has none).
  (skip-unless rhash--module)
  ;; Documented limitation (README): a table its own values refer to is
  ;; kept alive through the global reference to its value vector.
  ;; `rhash-clear' breaks the cycle.
  (let ((watch (make-hash-table :test 'eq :weakness 'key)))
    (rhash-robust--drop-self-referencing watch)
    (dotimes (_ 3) (rhash-robust--collect))
    (should (= (hash-table-count watch) 1))
    (rhash-robust--clear-watched watch)
    (rhash-robust--churn-stack 600)
    (should (rhash-robust--eventually (lambda () (= (hash-table-count watch) 0))))))

(defun rhash-robust--put-watched (table watch n)
  "Put N fresh strings in TABLE under keys 0..N-1, each watched by WATCH.
\(In a function of its own, so that no slot of the caller's frame holds
one: the GC scans the stack conservatively.)"
  (dotimes (i n)
    (let ((v (make-string 10 ?c)))
      (rhash-put i v table)
      (puthash v t watch))))

(ert-deftest rhash-robust-clear-releases-at-once ()
  ;; The module's storage drops cleared entries at once (the Lisp
  ;; fallback's tables are built-in ones, and what this would test there
  ;; is how conservatively Emacs 27 scans its stack: it failed only as
  ;; other test files changed the memory layout).
  (skip-unless rhash--module)
  (let ((watch (make-hash-table :test 'eq :weakness 'key))
        (table (rhash-make)))
    (rhash-robust--put-watched table watch 5)
    (rhash-remove 0 table)
    (rhash-clear table)
    (rhash-robust--churn-stack 600)
    (should (rhash-robust--eventually (lambda () (= (hash-table-count watch) 0))))
    (should (rhash-p table))))

;;;; Re-entrancy

(ert-deftest rhash-robust-reentrant-user-functions ()
  (let* ((table nil) (reads nil) (depth 0))
    (define-hash-table-test 'rhash-robust-reader
      (lambda (a b) (push (rhash-count table) reads) (equal a b))
      (lambda (k)
        ;; Reading the same table from its own hash function is allowed
        ;; (once: the nested lookup calls this function again).
        (when (= depth 0)
          (setq depth 1)
          (unwind-protect (push (rhash-get 'probe table) reads)
            (setq depth 0)))
        (if (symbolp k) 0 (sxhash-equal k))))
    (setq table (rhash-make :test 'rhash-robust-reader))
    (rhash-put 'probe 'seen table)
    (rhash-put 'other 'two table)
    (should (eq (rhash-get 'other table) 'two))
    (should (memq 'seen reads))
    ;; Writes from inside get the built-in's error, and change nothing.
    (dolist (write (list (lambda () (rhash-put 'x 1 table))
                         (lambda () (rhash-remove 'probe table))
                         (lambda () (rhash-clear table))))
      (define-hash-table-test 'rhash-robust-writer #'equal
        (lambda (k) (funcall write) (sxhash-equal k)))
      (let ((w (rhash-make :test 'rhash-robust-writer)))
        (setq table w)
        (let ((err (should-error (rhash-put 'a 1 w))))
          (should (equal (cdr err) (list "hash table test modifies table" w))))
        (should (rhash-empty-p w))))))

(ert-deftest rhash-robust-reentrant-map ()
  (let ((table (rhash-make)))
    (dotimes (i 20) (rhash-put i i table))
    ;; Nested walks, reads, writes, copies and clears from inside a walk.
    (rhash-map (lambda (k _)
                 (rhash-map (lambda (k2 v2) (when (= k2 (1+ k)) (rhash-put k2 (1+ v2) table)))
                            table)
                 (rhash-get (- 19 k) table)
                 (rhash-copy table)
                 (when (= k 5) (dotimes (j 50) (rhash-put (+ 100 j) j table)))
                 (when (= k 7) (rhash-remove 3 table))
                 (when (= k 120) (rhash-clear table)))
               table)
    (should (rhash-robust--consistent-p table))
    (should (rhash-empty-p table))
    (dotimes (i 5) (rhash-put i i table))
    (should (equal (rhash-keys table) '(0 1 2 3 4)))))

;;;; Non-local exits

(defvar rhash-robust--flaky nil
  "Non-nil while the flaky test functions may exit non-locally.")

(ert-deftest rhash-robust-nonlocal-exits-leave-table-consistent ()
  (let ((n 0))
    (define-hash-table-test 'rhash-robust-flaky
      (lambda (a b)
        (when (and rhash-robust--flaky (= 0 (% (cl-incf n) 7))) (signal 'quit nil))
        (equal a b))
      (lambda (k)
        (when (and rhash-robust--flaky (= 0 (% (cl-incf n) 11)))
          (throw 'rhash-robust 'thrown))
        (% (sxhash-equal k) 4)))
    (dolist (test '(eql equal rhash-robust-flaky))
      (let ((table (rhash-make :test test)))
        (dotimes (i 300)
          (catch 'rhash-robust
            (condition-case nil
                (let ((rhash-robust--flaky t))
                (progn
                  (rhash-put i (list i) table)
                  (when (= 0 (% i 3)) (rhash-remove (/ i 2) table))
                  (rhash-map (lambda (k _) (when (eql k i) (signal 'quit nil))) table)))
              (quit nil)))
          (should (rhash-robust--consistent-p table)))))))

;;;; Hostile input

(ert-deftest rhash-robust-huge-size-like-make-hash-table ()
  (dolist (size (list most-positive-fixnum (expt 2 40)))
    (should (equal (condition-case err (rhash-make :size size) (error err))
                   (condition-case err (make-hash-table :size size) (error err))))))

(ert-deftest rhash-robust-wrong-types-everywhere ()
  (let ((table (rhash-make)))
    (dolist (bad (append (and rhash--module (list (make-hash-table)))
                         (list 0 -1 "str" nil t 'sym [1 2] (list 1) 1.5
                               (make-marker) (current-buffer) #'car (lambda () 1))))
      (dolist (call (list (lambda () (rhash-get 1 bad)) (lambda () (rhash-put 1 2 bad))
                          (lambda () (rhash-remove 1 bad)) (lambda () (rhash-clear bad))
                          (lambda () (rhash-map #'ignore bad)) (lambda () (rhash-count bad))
                          (lambda () (rhash-copy bad)) (lambda () (rhash-keys bad))
                          (lambda () (rhash-to-alist bad)) (lambda () (rhash-to-plist bad))
                          (lambda () (rhash-contains-p 1 bad)) (lambda () (rhash-size bad))))
        (should (equal (condition-case err (funcall call) (error err))
                       (list 'wrong-type-argument 'rhash-p bad))))
      ;; Any object is a fine key and value.
      (unless (memq bad '(nil))
        (rhash-put bad bad table)
        (should (eq (rhash-get bad table) bad))))
    ;; A non-function for rhash-map, like maphash.
    (let ((h (make-hash-table)))
      (puthash 1 1 h)
      (should (equal (condition-case err (rhash-map 5 table) (error (car err)))
                     (condition-case err (maphash 5 h) (error (car err))))))
    (should (rhash-robust--consistent-p table))))

(declare-function rhash-test-foreign-user-ptr "rhash-foreign-module" ())
(declare-function rhash-test-null-user-ptr "rhash-foreign-module" ())

(ert-deftest rhash-robust-foreign-user-ptr ()
  ;; test/foreign-module.c, built by test/run-ert.sh when cc is available.
  (skip-unless (require 'rhash-foreign-module nil t))
  (dolist (ptr (list (rhash-test-foreign-user-ptr) (rhash-test-null-user-ptr)))
    (should (eq (rhash-p ptr) nil))
    (dolist (call (list (lambda (x) (rhash-get 1 x)) (lambda (x) (rhash-put 1 2 x))
                        (lambda (x) (rhash-remove 1 x)) #'rhash-clear #'rhash-count
                        (lambda (x) (rhash-map #'ignore x)) #'rhash-copy #'rhash-keys
                        #'rhash-to-alist #'rhash-size #'rhash-test #'rhash-weakness))
      (should (equal (condition-case err (funcall call ptr) (error err))
                     (list 'wrong-type-argument 'rhash-p ptr))))
    ;; And as a key or value it is just an object.
    (let ((table (rhash-make)))
      (rhash-put ptr ptr table)
      (should (eq (rhash-get ptr table) ptr)))))

(defun rhash-robust--deep (n)
  "A list nested N deep, built without recursion."
  (let ((k (list 1)))
    (dotimes (_ n) (setq k (list k)))
    k))

(ert-deftest rhash-robust-deep-and-circular-keys ()
  (let* ((deep (rhash-robust--deep 10000))
         (circ (let ((c (list 1 2))) (setcdr (cdr c) c) c))
         (circ2 (let ((c (list 1 2))) (setcdr (cdr c) c) c))
         (r (rhash-make :test 'equal)) (h (make-hash-table :test 'equal)))
    (dolist (k (list deep circ))
      (rhash-put k 'v r) (puthash k 'v h))
    (dolist (k (list deep circ (rhash-robust--deep 10000) circ2))
      (should (equal (condition-case err (rhash-get k r) (error (car err)))
                     (condition-case err (gethash k h) (error (car err))))))
    (should (= (rhash-count r) 2))
    (should (rhash-robust--consistent-p r))))

(ert-deftest rhash-robust-raw-byte-strings ()
  (let ((r (rhash-make :test 'equal)) (h (make-hash-table :test 'equal))
        (keys (list "\377" (string-to-multibyte "\377") "\303\251" "é"
                    (string-to-unibyte "\200\201") (decode-coding-string "\377abc" 'utf-8)
                    (encode-coding-string "日本" 'utf-8) "日本" (string 4194303))))
    (dolist (k keys) (rhash-put k (length k) r) (puthash k (length k) h))
    (should (= (rhash-count r) (hash-table-count h)))
    (dolist (k keys)
      (should (eql (rhash-get (copy-sequence k) r 'miss) (gethash (copy-sequence k) h 'miss))))))

;;;; Lisp threads

(ert-deftest rhash-robust-threads ()
  (skip-unless (fboundp 'make-thread))
  (let* ((table (rhash-make :test 'equal))
         (threads
          (mapcar (lambda (id)
                    (make-thread
                     (lambda ()
                       (dotimes (i 500)
                         (rhash-put (format "%d-%d" id i) i table)
                         (rhash-get (format "%d-%d" (- 3 id) i) table)
                         (when (= 0 (% i 50)) (thread-yield))
                         (when (= 0 (% i 3)) (rhash-remove (format "%d-%d" id (/ i 2)) table))))))
                  '(0 1 2 3))))
    (mapc #'thread-join threads)
    (should (rhash-robust--consistent-p table))
    ;; Each thread keeps its 500 keys minus the distinct halves it removed.
    (let ((removed (delete-dups (cl-loop for i below 500
                                         when (= 0 (% i 3)) collect (/ i 2)))))
      (should (= (rhash-count table) (* 4 (- 500 (length removed))))))))

(provide 'rhash-robust-test)
;;; rhash-robust-test.el ends here
