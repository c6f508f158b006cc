;;; rhash-mutation-test.el --- Bulk operations under mutation  -*- lexical-binding: t; -*-

;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; The bulk and set operations against the Lisp loops they replace while
;; Lisp code run by the operation (a merge FUNCTION, a PREDICATE, a user
;; test's hash function, `post-gc-hook') changes the tables and key lists
;; being read: built-in sources are read as `maphash' reads them, key
;; lists as `mapcar' reads them, and a walk visits every entry that stays
;; in its table.  Fixed cases, then a seeded differential suite.
;;
;; Environment:
;;   RHASH_MUT_SEED    an integer (replays a reported failure) or `random'
;;                     (draws and prints a seed); default 1.
;;   RHASH_MUT_ROUNDS  rounds of the differential suite (default 200).

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)
(require 'rhash-data)

;;;; Helpers

(defun rhash-mut--builtin (n &optional test)
  "A built-in table with TEST (default `eql') mapping 0..N-1 to themselves."
  (let ((h (make-hash-table :test (or test 'eql))))
    (dotimes (i n) (puthash i i h))
    h))

(defun rhash-mut--rhash (n &optional test)
  "An rhash table with TEST (default `eql') mapping 0..N-1 to themselves."
  (let ((r (rhash-make :test (or test 'eql))))
    (dotimes (i n) (rhash-put i i r))
    r))

(defmacro rhash-mut--outcome (&rest body)
  "The value of BODY, or (error . ERR) when it signals."
  (declare (indent 0))
  `(condition-case err (progn ,@body) (error (cons 'error err))))

(defvar rhash-mut--hook nil
  "A function the user tests of this file call with the key being hashed.")

(define-hash-table-test 'rhash-mut-test
  #'equal (lambda (k) (when rhash-mut--hook (funcall rhash-mut--hook k)) (sxhash-equal k)))

;;;; 1. A built-in source that shrinks while it is read

(defvar rhash-mut--gc-action nil
  "(N . FUNCTION): FUNCTION runs at the Nth garbage collection from now.")

(defun rhash-mut--gc-hook ()
  "Run `rhash-mut--gc-action' when its count runs out."
  (when rhash-mut--gc-action
    (if (> (car rhash-mut--gc-action) 1)
        (setcar rhash-mut--gc-action (1- (car rhash-mut--gc-action)))
      (let ((f (cdr rhash-mut--gc-action)))
        (setq rhash-mut--gc-action nil)
        (funcall f)))))

(defun rhash-mut--check-read (orig now result)
  "Whether RESULT holds a `maphash' reading of a table that went from ORIG to NOW.
ORIG and NOW are alists in iteration order; RESULT an rhash table.
Every entry of NOW is in RESULT, every entry of RESULT is in ORIG
with the same value, in ORIG's order."
  (let ((r (rhash-data-entries result)) (in-r (make-hash-table :test 'equal)))
    (dolist (e r) (puthash e t in-r))
    (and (cl-every (lambda (e) (gethash e in-r)) now)
         (equal r (cl-remove-if-not (lambda (e) (gethash e in-r)) orig)))))

(ert-deftest rhash-mut-builtin-source-shrinks-at-gc ()
  (let ((n 12000))
    (dolist (op (list (lambda (h) (rhash-merge (rhash-make) h))
                      (lambda (h) (rhash-union h (rhash-make)))
                      (lambda (h) (rhash-union (rhash-make) h))
                      #'rhash-from-hash-table
                      (lambda (h) (rhash-merge-with #'+ (rhash-mut--rhash n) h))))
      ;; A GC at each of the first calls that may collect.
      (dotimes (at 3)
        (let* ((h (rhash-mut--builtin n))
               (orig (rhash-data-entries h))
               (out (let ((gc-cons-threshold 1) (gc-cons-percentage 0.0)
                          (post-gc-hook (cons #'rhash-mut--gc-hook post-gc-hook))
                          (rhash-mut--gc-action
                           (cons (1+ at) (lambda () (remhash 9000 h) (remhash 11900 h)))))
                      (rhash-mut--outcome (funcall op h)))))
          (should (rhash-p out))
          (should-not (rhash-contains-p nil out))
          (if (= (rhash-count out) n)
              ;; merge-with into a table holding every key: doubled values.
              (should (or (equal (rhash-data-entries out) orig)
                          (cl-every (lambda (e) (= (cdr e) (* 2 (car e))))
                                    (cl-remove-if-not (lambda (e) (gethash (car e) h))
                                                      (rhash-data-entries out)))))
            (should (rhash-mut--check-read orig (rhash-data-entries h) out))))))))

;;;; 2. A built-in source that FUNCTION changes

(defun rhash-mut--ref-merge-with (fn table source)
  "`rhash-merge-with' FN into TABLE from SOURCE as a `maphash' loop."
  (maphash (lambda (k v)
             (let ((old (rhash-get k table 'rhash-mut--none)))
               (rhash-put k (if (eq old 'rhash-mut--none) v (funcall fn old v)) table)))
           source)
  table)

(ert-deftest rhash-mut-merge-with-function-changes-builtin-source ()
  (dolist (change (list (lambda (h) (dotimes (j 5) (remhash (+ 5 j) h)))
                        (lambda (h) (dolist (k '(50 51 52)) (puthash k k h)))))
    (let (got want)
      (dolist (merge (list #'rhash-merge-with #'rhash-mut--ref-merge-with))
        (let* ((h (rhash-mut--builtin 10))
               (table (rhash-mut--rhash 10))
               (first t)
               (merged nil))
          (funcall merge
                   (lambda (old new)
                     (when first (setq first nil) (funcall change h))
                     (push new merged)
                     (+ old new))
                   table h)
          (push (list (nreverse merged) (rhash-to-alist table)) got)))
      (setq want (car got) got (cadr got))
      (should (equal got want)))))

(ert-deftest rhash-mut-merge-user-target-changes-builtin-source ()
  ;; The target's hash function removes a later entry of the source.
  (let (results)
    (dolist (ref '(nil t))
      (let* ((h (rhash-mut--builtin 10))
             (table (rhash-make :test 'rhash-mut-test))
             (rhash-mut--hook (lambda (k) (when (eql k 2) (remhash 7 h) (puthash 60 60 h)))))
        (if ref
            (maphash (lambda (k v) (rhash-put k v table)) h)
          (rhash-merge table h))
        (push (rhash-to-alist table) results)))
    (should (equal (car results) (cadr results)))
    (should-not (assq 7 (car results)))
    (should (assq 60 (car results)))))

;;;; 3. B's user test touches A during intersection and difference

(ert-deftest rhash-mut-filter-b-test-touches-a ()
  (dolist (builtin-b '(t nil))
    (dolist (keep '(t nil))
      (let (results)
        (dolist (ref '(nil t))
          (let* ((a (rhash-mut--rhash 10 'equal))
                 (b (if builtin-b (make-hash-table :test 'rhash-mut-test)
                      (rhash-make :test 'rhash-mut-test)))
                 (rhash-mut--hook nil))
            (dotimes (i 5) (if builtin-b (puthash i t b) (rhash-put i t b)))
            ;; Hashing 6 removes a later key of A and changes an earlier value.
            (setq rhash-mut--hook (lambda (k) (when (eql k 6) (rhash-remove 8 a) (rhash-put 1 'one a))))
            (push (rhash-mut--outcome
                    (rhash-to-alist
                     (if ref
                         (let ((r (rhash-make :test 'equal)))
                           (rhash-map (lambda (k v)
                                        (when (eq keep (if builtin-b
                                                           (not (eq (gethash k b 'none) 'none))
                                                         (rhash-contains-p k b)))
                                          (rhash-put k v r)))
                                      a)
                           r)
                       (funcall (if keep #'rhash-intersection #'rhash-difference) a b))))
                  results)))
        (should (equal (car results) (cadr results)))
        (should-not (eq (car-safe (car results)) 'error))))))

;;;; 4. get-many reads KEYS as mapcar does

(ert-deftest rhash-mut-get-many-reads-list-cells-when-reached ()
  (dolist (builtin '(nil t))
    (dolist (vec '(nil t))
      (let* ((table (if builtin (make-hash-table :test 'rhash-mut-test)
                      (rhash-make :test 'rhash-mut-test)))
             (keys (list 1 2 3))
             (seq (if vec (vconcat keys) keys))
             (rhash-mut--hook nil))
        (dolist (k '(1 2 3)) (if builtin (puthash k (* 10 k) table) (rhash-put k (* 10 k) table)))
        (setq rhash-mut--hook
              (lambda (k) (when (eql k 1)
                            (if vec (aset seq 2 'gone) (setcar (cddr seq) 'gone)))))
        (should (equal (append (rhash-get-many seq table 'absent) nil) '(10 20 absent)))
        ;; Cut short or lengthened: `mapcar' took the length first.
        (unless vec
          (let* ((l (list 1 2 3 1))
                 (rhash-mut--hook (lambda (k) (when (eql k 1) (setcdr (cdr l) nil)))))
            (should (equal (rhash-get-many l table) '(10 20))))
          (let* ((l (list 1 2))
                 (rhash-mut--hook (lambda (k) (when (eql k 1) (setcdr (cdr l) (list 3 3))))))
            (should (equal (rhash-get-many l table) '(10 20)))))))))

;;;; 5. A walk visits every entry that stays, whatever FUNCTION compacts

(ert-deftest rhash-mut-compact-during-walk ()
  (let ((r (rhash-mut--rhash 200)) (seen 0))
    (rhash-map (lambda (k _v) (cl-incf seen) (rhash-remove k r) (rhash-compact r)) r)
    (should (= seen 200))
    (should (rhash-empty-p r)))
  ;; Removing every other key: the rest is visited, and compacted at the end.
  (let ((r (rhash-mut--rhash 200)) (seen nil))
    (rhash-map (lambda (k _v) (push k seen) (rhash-remove (1+ k) r) (rhash-compact r)) r)
    (should (equal (nreverse seen) (number-sequence 0 198 2)))
    ;; (The Lisp fallback's built-in tables keep their capacity.)
    (when rhash--module
      (should (= (rhash-size r) 100)))
    (should (equal (rhash-keys r) (number-sequence 0 198 2))))
  ;; A nested walk compacting: still deferred to the outer walk's end.
  (let ((r (rhash-mut--rhash 50)) (seen 0))
    (rhash-map (lambda (k _v)
                 (cl-incf seen)
                 (rhash-remove k r)
                 (rhash-map (lambda (_k _v) nil) r)
                 (rhash-compact r))
               r)
    (should (= seen 50)))
  ;; A merge FUNCTION compacting the rhash source it walks.
  (let ((src (rhash-mut--rhash 100)) (table (rhash-mut--rhash 100)) (n 0))
    (rhash-merge-with (lambda (o v) (cl-incf n) (rhash-remove v src) (rhash-compact src) (+ o v))
                      table src)
    (should (= n 100))))

;;;; Differential suite: callbacks that change what the operation reads

;; Each round draws tables (rhash or built-in, test `eql' or the user test
;; `rhash-mut-test'), a key sequence, an operation and a mutation program,
;; then runs the operation twice on fresh copies: once as the bulk
;; function, once as the Lisp loop it replaces.  The program's actions
;; (remove, put, clear, compact a table; setcar or cut a cell of the key
;; list, aset the key vector) fire at the Nth call of FUNCTION or
;; PREDICATE, or the first time the user test hashes a given key.  The
;; outcomes (results as alists, or errors) and every table and sequence
;; afterwards must be the same.

(defvar rhash-mut--state 1 "State of the xorshift32 generator.")

(defun rhash-mut--rand (n)
  "A pseudo-random integer in [0, N)."
  (% (setq rhash-mut--state (rhash-data-xorshift rhash-mut--state)) n))

(defun rhash-mut--seed ()
  "The seed: RHASH_MUT_SEED, or 1."
  (rhash-data-seed "RHASH_MUT_SEED"))

(defun rhash-mut--key (range)
  "A random key below RANGE: mostly fixnums, some strings (not `eq' twins)."
  (let ((k (rhash-mut--rand range)))
    (if (= 0 (rhash-mut--rand 5)) (format "s%d" k) k)))

(defun rhash-mut--spec (kind test lo hi)
  "A random table spec: (KIND TEST PAIRS REMOVALS), keys in [LO, HI)."
  (let (pairs removals)
    (dotimes (i (rhash-mut--rand 25))
      (push (cons (+ lo (rhash-mut--rand (- hi lo))) (* 10 i)) pairs))
    (dotimes (_ (rhash-mut--rand 6))
      (push (+ lo (rhash-mut--rand (- hi lo))) removals))
    (list kind test (nreverse pairs) removals)))

(defun rhash-mut--build (spec)
  "A fresh table from SPEC (see `rhash-mut--spec'); strings are made fresh."
  (pcase-let* ((`(,kind ,test ,pairs ,removals) spec)
               (table (if (eq kind 'rhash) (rhash-make :test test) (make-hash-table :test test))))
    (dolist (p pairs) (rhash-mut--put (car p) (cdr p) table))
    (dolist (k removals) (rhash-mut--remove k table))
    table))

(defun rhash-mut--put (k v table)
  "Put K -> V in TABLE, rhash or built-in."
  (if (rhash-p table) (rhash-put k v table) (puthash k v table)))

(defun rhash-mut--remove (k table)
  "Remove K from TABLE, rhash or built-in."
  (if (rhash-p table) (rhash-remove k table) (remhash k table)))

(defun rhash-mut--each (f table)
  "Call F with each entry of TABLE, rhash or built-in, as `maphash'."
  (if (rhash-p table) (rhash-map f table) (maphash f table)))

(defun rhash-mut--get (k table default)
  "K's value in TABLE, rhash or built-in, or DEFAULT."
  (if (rhash-p table) (rhash-get k table default) (gethash k table default)))

(defun rhash-mut--count (table)
  "TABLE's entry count, rhash or built-in."
  (if (rhash-p table) (rhash-count table) (hash-table-count table)))

(defun rhash-mut--test-of (table)
  "TABLE's test, rhash or built-in."
  (if (rhash-p table) (rhash-test table) (hash-table-test table)))

(defvar rhash-mut--world nil "Alist ROLE -> object of the run in progress.")
(defvar rhash-mut--pending nil "Hash triggers not fired yet: ((KEY . ACTIONS) ...).")
(defvar rhash-mut--calls 0 "Calls of FUNCTION or PREDICATE so far.")
(defvar rhash-mut--call-actions nil "Alist N -> ACTIONS run at the Nth call.")

(defun rhash-mut--act (actions)
  "Run the mutation ACTIONS on `rhash-mut--world'."
  (dolist (a actions)
    (let ((obj (cdr (assq (nth 1 a) rhash-mut--world))))
      (when obj
        (pcase (car a)
          (:remove (rhash-mut--remove (nth 2 a) obj))
          (:put (rhash-mut--put (nth 2 a) (nth 3 a) obj))
          (:clear (if (rhash-p obj) (rhash-clear obj) (clrhash obj)))
          (:compact (when (rhash-p obj) (rhash-compact obj)))
          (:setcar (cond ((and (consp obj) (nthcdr (nth 2 a) obj))
                          (setcar (nthcdr (nth 2 a) obj) (nth 3 a)))
                         ((and (vectorp obj) (< (nth 2 a) (length obj)))
                          (aset obj (nth 2 a) (nth 3 a)))))
          (:cut (when (and (consp obj) (nthcdr (nth 2 a) obj))
                  (setcdr (nthcdr (nth 2 a) obj) nil))))))))

(defun rhash-mut--hash-hook (k)
  "The user test's hook: fire the actions waiting for the first hash of K."
  (let ((p (assoc k rhash-mut--pending)))
    (when p
      (setq rhash-mut--pending (delq p rhash-mut--pending))
      (rhash-mut--act (cdr p)))))

(defun rhash-mut--callback (result)
  "A FUNCTION / PREDICATE body: count the call, run its actions, return RESULT."
  (setq rhash-mut--calls (1+ rhash-mut--calls))
  (rhash-mut--act (cdr (assq rhash-mut--calls rhash-mut--call-actions)))
  result)

(defun rhash-mut--random-actions (roles key-range)
  "One to three random actions on ROLES with keys below KEY-RANGE."
  (let (out)
    (dotimes (_ (if roles (1+ (rhash-mut--rand 3)) 0))
      (let ((role (nth (rhash-mut--rand (length roles)) roles)))
        (push (if (eq role 'keys)
                  (if (= 0 (rhash-mut--rand 4))
                      (list :cut 'keys (rhash-mut--rand 8))
                    (list :setcar 'keys (rhash-mut--rand 12) (rhash-mut--key key-range)))
                (pcase (rhash-mut--rand 10)
                  ((or 0 1 2 3) (list :remove role (rhash-mut--key key-range)))
                  ((or 4 5 6 7) (list :put role (rhash-mut--key key-range) (+ 1000 (rhash-mut--rand 100))))
                  (8 (list :compact role))
                  (_ (list :clear role))))
              out)))
    out))

(defun rhash-mut--snapshot (obj)
  "OBJ as comparable data: a table's alist with its kind, else a copy."
  (cond ((rhash-p obj) (list 'rhash (rhash-data-entries obj)))
        ((hash-table-p obj) (list 'builtin (rhash-data-entries obj)))
        ((consp obj) (copy-sequence obj))
        (t obj)))

(defun rhash-mut--ref (op w)
  "The Lisp loop for OP over the world W (an alist of roles)."
  (let ((a (alist-get 'a w)) (b (alist-get 'b w)) (tb (alist-get 't w))
        (keys (alist-get 'keys w)) (fn (alist-get 'fn w)))
    (pcase op
      ('merge (dolist (s (list (alist-get 's1 w) (alist-get 's2 w)))
                (rhash-mut--each (lambda (k v) (rhash-put k v tb)) s))
              tb)
      ('merge-with (dolist (s (list (alist-get 's1 w) (alist-get 's2 w)))
                     (rhash-mut--each
                      (lambda (k v)
                        (let ((old (rhash-get k tb 'rhash-mut--none)))
                          (rhash-put k (if (eq old 'rhash-mut--none) v (funcall fn old v)) tb)))
                      s))
                   tb)
      ((or 'intersection 'difference)
       (let ((r (rhash-make :test (rhash-mut--test-of a))))
         (rhash-mut--each (lambda (k v)
                            (when (eq (eq op 'intersection)
                                      (not (eq (rhash-mut--get k b 'rhash-mut--none) 'rhash-mut--none)))
                              (rhash-put k v r)))
                          a)
         r))
      ('union
       (let ((r (rhash-make :test (rhash-mut--test-of a))))
         (rhash-mut--each (lambda (k v) (rhash-put k v r)) a)
         (rhash-mut--each (lambda (k v)
                            (when (eq (rhash-mut--get k a 'rhash-mut--none) 'rhash-mut--none)
                              (rhash-put k v r)))
                          b)
         r))
      ('equal
       (and (= (rhash-mut--count a) (rhash-mut--count b))
            (catch 'rhash-mut--unequal
              (rhash-mut--each (lambda (k v)
                                 (let ((w (rhash-mut--get k b 'rhash-mut--none)))
                                   (unless (and (not (eq w 'rhash-mut--none)) (funcall fn v w))
                                     (throw 'rhash-mut--unequal nil))))
                               a)
              t)))
      ('get-many (if (listp keys)
                     (mapcar (lambda (k) (rhash-mut--get k tb 'dflt)) keys)
                   (cl-map 'vector (lambda (k) (rhash-mut--get k tb 'dflt)) keys)))
      ('put-many (cl-mapc (lambda (k v) (rhash-put k v tb)) keys (alist-get 'vals w)) tb)
      ('tally (mapc (lambda (x) (rhash-put x (1+ (rhash-get x tb 0)) tb)) keys) tb)
      ('uniq (let ((seen (make-hash-table :test (alist-get 'test w))) out)
               (mapc (lambda (x) (unless (rhash-mut--has x seen) (puthash x t seen) (push x out)))
                     keys)
               (nreverse out))))))

(defun rhash-mut--has (k h)
  "Non-nil if built-in H holds K."
  (not (eq (gethash k h 'rhash-mut--none) 'rhash-mut--none)))

(defun rhash-mut--bulk (op w)
  "The bulk function for OP over the world W."
  (let ((a (alist-get 'a w)) (b (alist-get 'b w)) (tb (alist-get 't w))
        (keys (alist-get 'keys w)) (fn (alist-get 'fn w)))
    (pcase op
      ('merge (rhash-merge tb (alist-get 's1 w) (alist-get 's2 w)))
      ('merge-with (rhash-merge-with fn tb (alist-get 's1 w) (alist-get 's2 w)))
      ('intersection (rhash-intersection a b))
      ('difference (rhash-difference a b))
      ('union (rhash-union a b))
      ('equal (rhash-equal a b fn))
      ('get-many (rhash-get-many keys tb 'dflt))
      ('put-many (rhash-put-many keys (alist-get 'vals w) tb))
      ('tally (rhash-tally-into keys tb))
      ('uniq (rhash-uniq keys (alist-get 'test w))))))

(defun rhash-mut--kind ()
  "`rhash' or `builtin', at random."
  (if (= 0 (rhash-mut--rand 2)) 'rhash 'builtin))

(defun rhash-mut--test ()
  "`eql' or the user test, at random."
  (if (= 0 (rhash-mut--rand 2)) 'eql 'rhash-mut-test))

(defun rhash-mut--round (round)
  "One differential round; ROUND names it in failures."
  (let* ((ops '(merge merge-with intersection difference union equal get-many put-many tally uniq))
         (op (nth (rhash-mut--rand (length ops)) ops))
         (specs nil) (keys nil) (vals nil) (hash-actions nil) (call-actions nil) (test nil))
    ;; Roles and their specs.  The user test hashes keys only where the
    ;; bulk function and the Lisp loop both do, once per element: the
    ;; target of merges, B of set operations and equal, A of union (whose
    ;; hooks wait on B's keys only: A's own keys are copied unhashed).
    (pcase op
      ((or 'merge 'merge-with)
       (push (cons 't (rhash-mut--spec 'rhash (rhash-mut--test) 0 30)) specs)
       (push (cons 's1 (rhash-mut--spec (rhash-mut--kind) 'eql 0 30)) specs)
       (push (cons 's2 (rhash-mut--spec (rhash-mut--kind) 'eql 0 30)) specs))
      ((or 'intersection 'difference 'equal)
       (push (cons 'a (rhash-mut--spec (rhash-mut--kind) 'eql 0 30)) specs)
       (push (cons 'b (rhash-mut--spec (rhash-mut--kind) (rhash-mut--test) 0 30)) specs))
      ('union
       (push (cons 'a (rhash-mut--spec (rhash-mut--kind) (rhash-mut--test) 0 30)) specs)
       (push (cons 'b (rhash-mut--spec (rhash-mut--kind) 'eql 0 60)) specs))
      ((or 'get-many 'put-many 'tally)
       (push (cons 't (rhash-mut--spec (if (eq op 'get-many) (rhash-mut--kind) 'rhash)
                                       (rhash-mut--test) 0 30))
             specs))
      ('uniq (setq test (rhash-mut--test))))
    (when (memq op '(get-many put-many tally uniq))
      (dotimes (_ (rhash-mut--rand 15)) (push (rhash-mut--key 30) keys))
      (dotimes (i (length keys)) (push (* 7 i) vals))
      (unless (= 0 (rhash-mut--rand 3))
        (setq keys (vconcat keys))))
    ;; The program: hash triggers on keys, call triggers on counts.
    (let* ((table-roles (mapcar #'car specs))
           (roles (if keys (cons 'keys table-roles) table-roles))
           (range (if (eq op 'union) 60 30)))
      (dotimes (_ (rhash-mut--rand 4))
        (let ((k (if (eq op 'union) (+ 30 (rhash-mut--rand 30)) (rhash-mut--rand 30))))
          (unless (assoc k hash-actions)
            (push (cons k (rhash-mut--random-actions roles range)) hash-actions))))
      (when (memq op '(merge-with equal))
        (dotimes (_ (rhash-mut--rand 4))
          (push (cons (1+ (rhash-mut--rand 12)) (rhash-mut--random-actions roles range))
                call-actions)))
      (when (eq op 'union)
        ;; A's keys never reach 30: the hooks on B's keys stay B's.
        (setq hash-actions
              (mapcar (lambda (h)
                        (cons (car h)
                              (mapcar (lambda (a)
                                        (if (and (memq (car a) '(:put :remove)) (eq (nth 1 a) 'a)
                                                 (integerp (nth 2 a)))
                                            (cl-list* (car a) 'a (% (nth 2 a) 30) (nthcdr 3 a))
                                          a))
                                      (cdr h))))
                      hash-actions))))
    (let (outcomes)
      (dolist (ref '(nil t))
        (let* ((world (append (mapcar (lambda (s) (cons (car s) (rhash-mut--build (cdr s)))) specs)
                              (list (cons 'keys (if (listp keys) (copy-sequence keys) (copy-sequence keys)))
                                    (cons 'vals (copy-sequence vals))
                                    (cons 'test test)
                                    (cons 'fn (if (eq op 'equal)
                                                  (lambda (x y) (rhash-mut--callback (equal x y)))
                                                (lambda (old new) (rhash-mut--callback (+ old new))))))))
               (rhash-mut--world world)
               (rhash-mut--pending (copy-tree hash-actions))
               (rhash-mut--calls 0)
               (rhash-mut--call-actions call-actions)
               (rhash-mut--hook #'rhash-mut--hash-hook)
               (out (rhash-mut--outcome
                      (let ((r (if ref (rhash-mut--ref op world) (rhash-mut--bulk op world))))
                        (if (or (rhash-p r) (hash-table-p r)) (rhash-data-entries r) r))))
               (rhash-mut--hook nil))
          ;; Tables named in errors are named by their roles.
          (when (eq (car-safe out) 'error)
            (setq out (mapcar (lambda (x)
                                (if (or (rhash-p x) (hash-table-p x))
                                    (or (car (rassq x world)) 'table)
                                  x))
                              out)))
          (push (list :out (if (vectorp out) (append out nil) out)
                      :world (mapcar (lambda (e) (cons (car e) (rhash-mut--snapshot (cdr e))))
                                     (cl-remove-if (lambda (e) (memq (car e) '(fn))) world))
                      :calls rhash-mut--calls)
                outcomes)))
      (unless (equal (car outcomes) (cadr outcomes))
        (let ((print-length nil) (print-level nil))
          (message "rhash-mut-differential round %d (%s):\n loop %S\n bulk %S"
                   round op (car outcomes) (cadr outcomes)))
        (ert-fail (list :round round :op op :specs specs :keys keys
                        :hash-actions hash-actions :call-actions call-actions
                        :loop (car outcomes) :bulk (cadr outcomes)))))))

(ert-deftest rhash-mut-differential ()
  (let ((seed (rhash-mut--seed))
        (rounds (let ((e (getenv "RHASH_MUT_ROUNDS")))
                  (if (and e (string-match-p "\\`[0-9]+\\'" e)) (string-to-number e) 200))))
    (message "rhash-mut-differential: seed %d, %d rounds (RHASH_MUT_SEED replays)" seed rounds)
    (setq rhash-mut--state (if (zerop (logand seed #xFFFFFFFF)) 1 (logand seed #xFFFFFFFF)))
    (dotimes (i rounds)
      (rhash-mut--round i))))

(provide 'rhash-mutation-test)
;;; rhash-mutation-test.el ends here
