;;; rhash-fallback.el --- rhash without its module, on built-in hash tables  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 the rhash authors
;; SPDX-License-Identifier: GPL-3.0-or-later

;; This file is not part of GNU Emacs.

;;; Commentary:

;; The Lisp fallback of rhash: every function of rhash's contract, on
;; built-in hash tables.  rhash.el loads this file instead of the module
;; when no module can be loaded (none built and building declined,
;; impossible or failed; an Emacs without module support; or the
;; environment variable RHASH_NO_MODULE=1).  It is never loaded beside
;; the module: the choice is made once, when rhash.el loads.
;;
;; `rhash-make' returns a `hash-table' and `rhash-p' is `hash-table-p';
;; results, errors and iteration order are the module's (a built-in
;; table's order is the one the module copies).  Each function that
;; takes a table checks it, so that a wrong argument signals
;; (wrong-type-argument rhash-p X) as in the module.  A wrong number of
;; arguments gives what Emacs gives for any Lisp function,
;; (wrong-number-of-arguments (MIN . MAX) N).
;;
;; `:storage 'native' gives an ordinary built-in table that remembers
;; the storage asked for (`rhash-storage'); putting a key or value that
;; is not plain data into it signals as the module does.  What is read
;; out of it is the very object put in, not a fresh copy.
;;
;; `rhash-save' and `rhash-load' read and write the file format of
;; docs/file-format.md, byte for byte the module's.

;;; Code:

(require 'cl-lib)

(defvar rhash--version)

;;;; Tables

(defconst rhash-fallback--absent (make-symbol "absent")
  "A default for `gethash' that no table holds.")

(defmacro rhash-fallback--check (table)
  "Signal (wrong-type-argument rhash-p TABLE) unless TABLE is a table."
  `(unless (hash-table-p ,table)
     (signal 'wrong-type-argument (list 'rhash-p ,table))))

(defvar rhash-fallback--native (make-hash-table :test 'eq :weakness 'key)
  "The tables made with `:storage native', mapped to t.")

(defvar rhash-fallback--any-native nil
  "Non-nil once a native table was made: puts look it up then.")

(defun rhash-fallback--key-arg (key args)
  "The value after the first KEY in ARGS that has one, and its index.
Return (VALUE . INDEX) or nil.  Like `make-hash-table's parsing."
  (let ((i 0) (tail args) found)
    (while (and (not found) (cdr tail))
      (when (eq (car tail) key)
        (setq found (cons (cadr tail) i)))
      (setq tail (cdr tail) i (1+ i)))
    found))

(defun rhash-fallback--remove-nth-pair (i args)
  "ARGS without its elements I and I+1 (a fresh list)."
  (append (cl-subseq args 0 i) (nthcdr (+ i 2) args)))

(defun rhash-make (&rest keyword-args)
  "Create and return a new table, like `make-hash-table'.
Without the rhash module this is a built-in hash table.  KEYWORD-ARGS
are those of `make-hash-table' (a weakness other than nil signals
`rhash-unsupported', as with the module) and `:storage', `lisp' (the
default) or `native'.

\(fn &rest KEYWORD-ARGS)"
  (let* ((args keyword-args)
         (storage (rhash-fallback--key-arg :storage args))
         (native nil))
    (when storage
      (setq args (rhash-fallback--remove-nth-pair (cdr storage) args))
      (pcase (car storage)
        ('lisp)
        ('native (setq native t))
        (x (signal 'error (list "Invalid hash table storage" x)))))
    (let* ((weak (rhash-fallback--key-arg :weakness args))
           (weak-p (and weak (memq (car weak) '(key value key-or-value
                                                    key-and-value t))))
           (table
            (condition-case err
                (apply #'make-hash-table
                       (if weak-p
                           (append (cl-subseq args 0 (cdr weak)) (list :weakness nil)
                                   (nthcdr (+ 2 (cdr weak)) args))
                         args))
              (error
               ;; The module checks the weakness before the argument list.
               (if (and weak-p (equal (cadr err) "Invalid argument list"))
                   nil
                 (signal (car err) (cdr err)))))))
      (when weak-p
        (signal 'rhash-unsupported
                (list "Weak tables are not supported: the module API \
cannot make weak references" (car weak))))
      (when native
        (unless (memq (hash-table-test table) '(eq eql equal))
          (signal 'rhash-unsupported
                  (list "A native table takes only the tests eq, eql and equal"
                        (hash-table-test table))))
        (rhash-fallback--set-native table))
      table)))

(defun rhash-fallback--set-native (table)
  "Remember that TABLE has native storage."
  (setq rhash-fallback--any-native t)
  (puthash table t rhash-fallback--native))

(defun rhash-fallback--new (storage test size)
  "Return a new table of STORAGE (`lisp' or `native'), TEST and SIZE."
  (let ((table (make-hash-table :test test :size size)))
    (when (eq storage 'native)
      (rhash-fallback--set-native table))
    table))

(defun rhash-p (object)
  "Return t if OBJECT is a table: without the module, a built-in one."
  (hash-table-p object))

(defun rhash-get (key table &optional default)
  "Look up KEY in TABLE and return its value, or DEFAULT.  Like `gethash'."
  (rhash-fallback--check table)
  (gethash key table default))

(defun rhash-fallback--check-put (key value table)
  "Check that KEY and VALUE may go into TABLE, a native table or not."
  (when (gethash table rhash-fallback--native)
    (rhash-fallback--check-native-key key table)
    (rhash-fallback--check-plain value)))

(defun rhash-put (key value table)
  "Associate KEY with VALUE in TABLE and return VALUE.  Like `puthash'."
  (rhash-fallback--check table)
  (when rhash-fallback--any-native
    (rhash-fallback--check-put key value table))
  (puthash key value table))

(defun rhash-remove (key table)
  "Remove KEY from TABLE and return nil.  Like `remhash'."
  (rhash-fallback--check table)
  (remhash key table))

(defun rhash-clear (table)
  "Remove every entry from TABLE and return TABLE.  Like `clrhash'."
  (rhash-fallback--check table)
  (clrhash table))

(defvar rhash-fallback--walks (make-hash-table :test 'eq :weakness 'key)
  "Tables being walked, mapped to (WALKS . COMPACT-PENDING).")

(defun rhash-fallback--walk (function table)
  "Call FUNCTION with each key and value of TABLE, as `maphash'.
While the walk runs, `rhash-compact' of TABLE waits for its end (the
last walk's end, when walks nest), so that the walk visits every entry
that stays in TABLE.  A walk left by a non-local exit leaves a waiting
compaction to the next walk's end or the next `rhash-compact'."
  (let ((cell (or (gethash table rhash-fallback--walks)
                  (puthash table (cons 0 nil) rhash-fallback--walks)))
        (done nil))
    (setcar cell (1+ (car cell)))
    (unwind-protect
        (progn (maphash function table)
               (setq done t))
      (setcar cell (1- (car cell)))
      (when (zerop (car cell))
        (remhash table rhash-fallback--walks)
        (when (and done (cdr cell))
          (rhash-compact table))))
    nil))

(defun rhash-map (function table)
  "Call FUNCTION with each key and value of TABLE; return nil.  Like `maphash'.
A `rhash-compact' of TABLE during the walk waits for the walk's end."
  (rhash-fallback--check table)
  (rhash-fallback--walk function table))

(defun rhash-count (table)
  "Return the number of entries in TABLE.  Like `hash-table-count'."
  (rhash-fallback--check table)
  (hash-table-count table))

(defun rhash-fallback--copy-into (table source)
  "Put SOURCE's entries into TABLE in SOURCE's order; return TABLE."
  (maphash (lambda (k v) (puthash k v table)) source)
  table)

(defun rhash-copy (table)
  "Return a copy of TABLE: same test, storage and iteration order.
Like `copy-hash-table' (a weak TABLE gives a table that is not weak)."
  (rhash-fallback--check table)
  (let ((copy (if (hash-table-weakness table)
                  (rhash-fallback--copy-into
                   (make-hash-table :test (hash-table-test table)
                                    :size (hash-table-count table))
                   table)
                (copy-hash-table table))))
    (when (gethash table rhash-fallback--native)
      (rhash-fallback--set-native copy))
    copy))

(defun rhash-test (table)
  "Return the test of TABLE.  Like `hash-table-test'."
  (rhash-fallback--check table)
  (hash-table-test table))

(defun rhash-size (table)
  "Return the capacity of TABLE.  Like `hash-table-size'."
  (rhash-fallback--check table)
  (max (hash-table-size table) (hash-table-count table)))

(defun rhash-weakness (table)
  "Return the weakness of TABLE: nil for tables made by `rhash-make'."
  (rhash-fallback--check table)
  (hash-table-weakness table))

(defun rhash-keys (table)
  "Return a fresh list of TABLE's keys, in iteration order."
  (rhash-fallback--check table)
  (let (keys)
    (maphash (lambda (k _) (push k keys)) (rhash-fallback--snapshot table))
    (nreverse keys)))

(defun rhash-values (table)
  "Return a fresh list of TABLE's values, in iteration order."
  (rhash-fallback--check table)
  (let (vals)
    (maphash (lambda (_ v) (push v vals)) (rhash-fallback--snapshot table))
    (nreverse vals)))

(defun rhash-contains-p (key table)
  "Return t if KEY is present in TABLE, even with a nil value."
  (rhash-fallback--check table)
  (not (eq (gethash key table rhash-fallback--absent) rhash-fallback--absent)))

(defun rhash-empty-p (table)
  "Return t if TABLE has no entries.  Like `hash-table-empty-p'."
  (rhash-fallback--check table)
  (zerop (hash-table-count table)))

(defun rhash-storage (table)
  "Return the storage TABLE was made with: `lisp' or `native'."
  (rhash-fallback--check table)
  (if (gethash table rhash-fallback--native) 'native 'lisp))

;;;; Internals shared with the module's tests

(defun rhash--hole ()
  "Return a marker that is never in a table (as the module's free slots)."
  rhash-fallback--absent)

(defun rhash--adopt (table keys vals)
  "Put KEYS[i] -> VALS[i] into TABLE for each i in order; return TABLE."
  (rhash-fallback--check table)
  (unless (= (length keys) (length vals))
    (signal 'args-out-of-range (list keys vals)))
  (dotimes (i (length keys))
    (rhash-put (aref keys i) (aref vals i) table))
  table)

;;;; Conversions

(defun rhash-fallback--snapshot (table)
  "TABLE itself, or a copy of it read at one instant.
The lists of entries are built from a copy (made in C, no Lisp runs
meanwhile), so that Lisp run while they are built (a GC hook, say)
cannot give a mix of two states, as with the module."
  (copy-hash-table table))

(defun rhash-from-hash-table (hash-table)
  "Return a new table with the entries of HASH-TABLE, in its order."
  (unless (hash-table-p hash-table)
    (signal 'wrong-type-argument (list 'hash-table-p hash-table)))
  (rhash-fallback--copy-into
   (make-hash-table :test (hash-table-test hash-table)
                    :size (hash-table-count hash-table))
   hash-table))

(defun rhash-to-hash-table (table)
  "Return a new built-in hash table with the entries of TABLE, in order."
  (rhash-fallback--check table)
  (rhash-fallback--copy-into
   (make-hash-table :test (hash-table-test table) :size (hash-table-count table))
   table))

(defun rhash-from-alist (alist &rest keyword-args)
  "Return a new table holding the pairs of ALIST.
KEYWORD-ARGS are passed to `rhash-make'.  Later duplicates replace
earlier values."
  (let ((table (apply #'rhash-make keyword-args)))
    (dolist (pair alist)
      (rhash-put (car pair) (cdr pair) table))
    table))

(defun rhash-from-plist (plist &rest keyword-args)
  "Return a new table holding the pairs of PLIST.
KEYWORD-ARGS are passed to `rhash-make'.  Later duplicates replace
earlier values.  PLIST must have an even length."
  (unless (and (proper-list-p plist) (zerop (% (length plist) 2)))
    (signal 'wrong-type-argument (list 'plistp plist)))
  (let ((table (apply #'rhash-make keyword-args)))
    (while plist
      (rhash-put (car plist) (cadr plist) table)
      (setq plist (cddr plist)))
    table))

(defun rhash-to-alist (table)
  "Return TABLE's entries as a fresh alist, in iteration order."
  (rhash-fallback--check table)
  (let (alist)
    (maphash (lambda (k v) (push (cons k v) alist)) (rhash-fallback--snapshot table))
    (nreverse alist)))

(defun rhash-to-plist (table)
  "Return TABLE's entries as a fresh plist, in iteration order."
  (rhash-fallback--check table)
  (let (plist)
    (maphash (lambda (k v) (push k plist) (push v plist)) (rhash-fallback--snapshot table))
    (nreverse plist)))

;;;; Bulk and set operations

(defun rhash-fallback--vector (seq)
  "SEQ, a list or a vector, as a vector (a fresh one for a list)."
  (cond ((vectorp seq) seq)
        ((listp seq) (vconcat seq))
        (t (signal 'wrong-type-argument (list 'listp seq)))))

(defun rhash-get-many (keys table &optional default)
  "Return the values of KEYS in TABLE, DEFAULT where a key is absent.
KEYS is a list or a vector; the result is a fresh sequence of the same
type, in KEYS' order."
  (let ((v (rhash-fallback--vector keys)))
    (rhash-fallback--check table)
    (if (consp keys)
        ;; A user test's functions may change the list: `mapcar' reads
        ;; each cell when it reaches it.
        (mapcar (lambda (k) (gethash k table default)) keys)
      (let ((out (make-vector (length v) nil)) (i 0) (n (length v)))
        (while (< i n)
          (aset out i (gethash (aref v i) table default))
          (setq i (1+ i)))
        (if (vectorp keys) out (append out nil))))))

(defun rhash-put-many (keys values table)
  "Put each of KEYS into TABLE with the value at the same place in VALUES.
KEYS and VALUES are lists or vectors of equal length (otherwise signal
`args-out-of-range' naming both lengths, leaving TABLE unchanged).
Return TABLE."
  (let ((kv (rhash-fallback--vector keys))
        (vv (rhash-fallback--vector values)))
    (rhash-fallback--check table)
    (unless (= (length kv) (length vv))
      (signal 'args-out-of-range
              (list "KEYS and VALUES differ in length" (length kv) (length vv))))
    (if (or (consp keys) (consp values))
        ;; Lists are read as `cl-mapc' reads them, when reached.
        (cl-mapc (lambda (k v) (rhash-put k v table)) keys values)
      (let ((i 0) (n (length kv)))
        (while (< i n)
          (rhash-put (aref kv i) (aref vv i) table)
          (setq i (1+ i)))))
    table))

(defun rhash-merge (table &rest sources)
  "Put every entry of each of SOURCES into TABLE, in order; return TABLE."
  (rhash-fallback--check table)
  (dolist (s sources) (rhash-fallback--check s))
  (dolist (s sources)
    (rhash-fallback--walk (lambda (k v) (rhash-put k v table)) s))
  table)

(defun rhash-merge-with (function table &rest sources)
  "As `rhash-merge', but a key in TABLE gets (FUNCTION OLD NEW).
Return TABLE."
  (rhash-fallback--check table)
  (dolist (s sources) (rhash-fallback--check s))
  (dolist (s sources)
    (rhash-fallback--walk
     (lambda (k v)
       (let ((old (gethash k table rhash-fallback--absent)))
         (rhash-put k (if (eq old rhash-fallback--absent)
                          v
                        (funcall function old v))
                    table)))
     s))
  table)

(defun rhash-fallback--like (a)
  "A new empty table with A's test and storage."
  (rhash-fallback--new (if (gethash a rhash-fallback--native) 'native 'lisp)
                       (hash-table-test a) 0))

(defun rhash-union (a b)
  "A new table: A's entries, then B's entries whose keys A lacks."
  (rhash-fallback--check a)
  (rhash-fallback--check b)
  (let ((r (rhash-fallback--like a)))
    (rhash-fallback--walk (lambda (k v) (rhash-put k v r)) a)
    (rhash-fallback--walk
     (lambda (k v)
       (when (eq (gethash k a rhash-fallback--absent) rhash-fallback--absent)
         (rhash-put k v r)))
     b)
    r))

(defun rhash-fallback--filter (a b in-b)
  "Return a new table of the entries of A that B has (IN-B) or lacks, in A's order."
  (rhash-fallback--check a)
  (rhash-fallback--check b)
  (let ((r (rhash-fallback--like a)))
    (rhash-fallback--walk
     (lambda (k v)
       (unless (eq in-b (eq (gethash k b rhash-fallback--absent) rhash-fallback--absent))
         (rhash-put k v r)))
     a)
    r))

(defun rhash-intersection (a b)
  "Return a new table of A's entries whose keys are in B, in A's order."
  (rhash-fallback--filter a b t))

(defun rhash-difference (a b)
  "A new table: A's entries whose keys B lacks, in A's order."
  (rhash-fallback--filter a b nil))

(defun rhash-equal (a b &optional predicate)
  "Return t if A and B hold the same keys with values satisfying PREDICATE.
PREDICATE defaults to `equal' and gets A's value first."
  (rhash-fallback--check a)
  (rhash-fallback--check b)
  (let ((pred (or predicate #'equal)))
    (and (= (hash-table-count a) (hash-table-count b))
         (catch 'rhash-fallback--differ
           (rhash-fallback--walk
            (lambda (k v)
              (let ((w (gethash k b rhash-fallback--absent)))
                (unless (and (not (eq w rhash-fallback--absent))
                             (funcall pred v w))
                  (throw 'rhash-fallback--differ nil))))
            a)
           t))))

(defun rhash-tally-into (sequence table)
  "Count the elements of SEQUENCE into TABLE; return TABLE.
Each occurrence adds 1 to TABLE's value for it, as
\(cl-incf (rhash-get ELT TABLE 0)) does."
  (let ((v (rhash-fallback--vector sequence)))
    (rhash-fallback--check table)
    ;; (`mapc' reads a list's cells when it reaches them, as the module.)
    (mapc (lambda (x) (rhash-put x (1+ (gethash x table 0)) table))
          (if (consp sequence) sequence v))
    table))

(defun rhash-tally (sequence &rest keyword-args)
  "Return a new table counting the elements of SEQUENCE.
KEYWORD-ARGS are as for `rhash-make', but the test defaults to `equal'.

\(fn SEQUENCE &rest KEYWORD-ARGS)"
  (rhash-tally-into
   sequence
   (apply #'rhash-make (if (rhash-fallback--key-arg :test keyword-args)
                           keyword-args
                         (append keyword-args '(:test equal))))))

(defun rhash-uniq (sequence &optional test)
  "A fresh list of the distinct elements of SEQUENCE, first occurrences first.
TEST is eq, eql, equal (the default) or a user test."
  (unless (symbolp test)
    (signal 'error (list "Invalid hash table test" test)))
  (let ((seen (make-hash-table :test (or test 'equal)))
        (v (rhash-fallback--vector sequence))
        out)
    ;; (`mapc' reads a list's cells when it reaches them, as the module.)
    (mapc (lambda (x)
            (when (eq (gethash x seen rhash-fallback--absent) rhash-fallback--absent)
              (puthash x t seen)
              (push x out)))
          (if (consp sequence) sequence v))
    (nreverse out)))

(defun rhash-compact (table)
  "Forget TABLE's freed places: later keys are appended.  Return TABLE.
A built-in table never gives memory back: its capacity stays.  During
a walk of TABLE (`rhash-map', a bulk operation reading it) this waits
for the walk's end."
  (rhash-fallback--check table)
  (let ((walks (gethash table rhash-fallback--walks)))
    (if walks
        ;; During a walk of TABLE: at the walk's end.
        (setcdr walks t)
      (let ((pairs (rhash-to-alist table)))
        (clrhash table)
        (dolist (p pairs) (puthash (car p) (cdr p) table)))))
  table)

(defun rhash-stats (table)
  "A plist describing TABLE, as the module's `rhash-stats' does.
Without the module only `:count' and `:capacity' are measured; the
probe figures are 0 and `:bytes' is an estimate (8 words per entry)."
  (rhash-fallback--check table)
  (let ((size (rhash-size table)))
    (list :count (hash-table-count table) :capacity size :index-slots size
          :tombstones 0 :max-probe 0 :mean-probe 0.0 :bytes (* 64 size))))

;;;; Plain data

(defconst rhash-fallback--max-depth 10000
  "The deepest nesting of lists and vectors plain data may have.")

(defun rhash-fallback--plain-atom-p (x)
  "Non-nil if X is a plain-data atom (not a cons or a vector)."
  (or (null x) (eq x t) (integerp x) (floatp x) (stringp x)
      (and (symbolp x) (eq (intern-soft (symbol-name x)) x))))

(defun rhash-fallback--plain-walk (object)
  "Return nil if OBJECT is plain data, else (WHY . X).
WHY is `circular' (X the top object) or `type' (X the first object
that is not plain data, depth first, or the container nested too
deep)."
  ;; Depth first with an explicit stack (plain data may nest 10000 deep,
  ;; deeper than Lisp recursion goes).  A frame is (CONTAINER . NEXT):
  ;; for a list NEXT is the remaining cdr chain, for a vector an index.
  ;; `path' holds the containers being walked, to tell a cycle through
  ;; cars or elements from plain depth.
  (let ((stack nil) (depth 0) (path (make-hash-table :test 'eq))
        (result nil) (x object) (have t))
    (while (and (not result) (or have stack))
      (if have
          (progn
            (setq have nil)
            (cond
             ((consp x)
              (if (gethash x path)
                  (setq result (cons 'circular object))
                (if (>= depth rhash-fallback--max-depth)
                    (setq result (cons 'type x))
                  ;; The cdr chain: Floyd's cycle check.
                  (let ((slow x) (fast x) (circular nil))
                    (while (and (not circular) (consp fast) (consp (cdr fast)))
                      (setq fast (cddr fast) slow (cdr slow))
                      (when (eq fast slow) (setq circular t)))
                    (if circular
                        (setq result (cons 'circular object))
                      (puthash x t path)
                      (setq depth (1+ depth))
                      (push (cons x x) stack))))))
             ((vectorp x)
              (if (gethash x path)
                  (setq result (cons 'circular object))
                (if (>= depth rhash-fallback--max-depth)
                    (setq result (cons 'type x))
                  (puthash x t path)
                  (setq depth (1+ depth))
                  (push (cons x 0) stack))))
             ((not (rhash-fallback--plain-atom-p x))
              (setq result (cons 'type x)))))
        ;; Take the next element of the top frame.
        (let* ((frame (car stack)) (c (car frame)) (next (cdr frame)))
          (cond
           ((and (consp c) (consp next))
            (setcdr frame (cdr next))
            (setq x (car next) have t))
           ((consp c)
            ;; The tail of the chain (nil or an atom), then done.
            (pop stack)
            (remhash c path)
            (setq depth (1- depth))
            (when next (setq x next have t)))
           ((< next (length c))
            (setcdr frame (1+ next))
            (setq x (aref c next) have t))
           (t (pop stack)
              (remhash c path)
              (setq depth (1- depth)))))))
    result))

(defun rhash-plain-data-p (object)
  "Return t if OBJECT is plain data, which a native table can hold.
Plain data: nil and t, symbols interned in the standard obarray,
integers, floats, strings, and acyclic conses and vectors of plain
data nested at most 10000 deep."
  (null (rhash-fallback--plain-walk object)))

(defun rhash-fallback--check-plain (object)
  "Signal unless OBJECT is plain data: `wrong-type-argument' or `circular-list'."
  (unless (rhash-fallback--plain-atom-p object)
    (let ((why (rhash-fallback--plain-walk object)))
      (pcase (car why)
        ('circular (signal 'circular-list (list (cdr why))))
        ('type (signal 'wrong-type-argument
                       (list 'rhash-plain-data-p (cdr why))))))))

(defun rhash-fallback--check-native-key (key table)
  "Signal unless KEY is plain data that native TABLE's test can take."
  (rhash-fallback--check-plain key)
  (pcase (hash-table-test table)
    ('eq (unless (or (fixnump key) (symbolp key))
           (signal 'rhash-unsupported
                   (list "A native eq table takes only fixnums and symbols as keys" key))))
    ('eql (unless (or (integerp key) (floatp key) (symbolp key))
            (signal 'rhash-unsupported
                    (list "A native eql table takes only numbers and symbols as keys"
                          key))))))

;;;; Saving and loading

(defconst rhash-fallback--magic (unibyte-string #x89 ?R ?H ?T ?\r ?\n #x1a ?\n)
  "The first 8 bytes of every rhash table file.")

(defconst rhash-fallback--crc-table
  (let ((v (make-vector 256 0)))
    (dotimes (i 256)
      (let ((c i))
        (dotimes (_ 8)
          (setq c (if (= (logand c 1) 1)
                      (logxor #xEDB88320 (ash c -1))
                    (ash c -1))))
        (aset v i c)))
    v)
  "CRC-32 (IEEE 802.3, reflected) of each byte value.")

(defun rhash-fallback--crc32 (bytes &optional end)
  "The CRC-32 of the unibyte string BYTES up to END, as zlib's `crc32'."
  (let ((crc #xFFFFFFFF) (tbl rhash-fallback--crc-table) (i 0)
        (n (or end (length bytes))))
    (while (< i n)
      (setq crc (logxor (aref tbl (logand (logxor crc (aref bytes i)) 255))
                        (ash crc -8))
            i (1+ i)))
    (logxor crc #xFFFFFFFF)))

(defun rhash-fallback--put-le (n bytes)
  "Insert the integer N as BYTES bytes, little-endian."
  (dotimes (_ bytes)
    (insert (logand n 255))
    (setq n (ash n -8))))

(defun rhash-fallback--put-varint (n)
  "Insert the natural number N as an unsigned LEB128 varint."
  (while (>= n 128)
    (insert (logior 128 (logand n 127)))
    (setq n (ash n -7)))
  (insert n))

(defconst rhash-fallback--raw-byte-re (string ?\[ #x3fff80 ?- #x3fffff ?\])
  "A regexp matching a raw-byte char of a multibyte string.")

(defun rhash-fallback--char-bytes (c)
  "The bytes of char C in Emacs's own multibyte form, as a list."
  (cl-flet ((cont (shift) (logior #x80 (logand (ash c (- shift)) #x3F))))
    (cond ((< c #x80) (list c))
          ((< c #x800) (list (logior #xC0 (ash c -6)) (cont 0)))
          ((< c #x10000) (list (logior #xE0 (ash c -12)) (cont 6) (cont 0)))
          ((< c #x200000) (list (logior #xF0 (ash c -18)) (cont 12) (cont 6) (cont 0)))
          ((<= c #x3FFF7F) (list #xF8 (cont 18) (cont 12) (cont 6) (cont 0)))
          ;; A raw byte B: C0 or C1, then one byte.
          (t (let ((b (- c #x3FFF00)))
               (list (logior #xC0 (logand (ash b -6) 1)) (logior #x80 (logand b #x3F))))))))

(defun rhash-fallback--bytes-of (s)
  "Return the bytes of string S in Emacs's own form, a unibyte string.
\(`string-as-unibyte' gives a raw-byte char as its one byte, not as
its two-byte internal form: those strings go char by char.)"
  (cond ((not (multibyte-string-p s)) s)
        ((not (string-match-p rhash-fallback--raw-byte-re s))
         (with-no-warnings (string-as-unibyte s)))
        (t (apply #'unibyte-string
                  (mapcan #'rhash-fallback--char-bytes (string-to-list s))))))

(defun rhash-fallback--from-bytes (b)
  "The multibyte string whose internal form is the unibyte string B, or nil.
Nil when B is not a valid internal form."
  (let ((s (if (string-match-p "[\300\301]" b)
               ;; Raw bytes: `string-as-multibyte' would not see their
               ;; two-byte form, so the chars are read here.
               (let ((i 0) (n (length b)) chars)
                 (while (< i n)
                   (let* ((lead (aref b i))
                          (len (cond ((< lead #x80) 1) ((< lead #xC0) 0) ((< lead #xE0) 2)
                                     ((< lead #xF0) 3) ((< lead #xF8) 4) ((= lead #xF8) 5) (t 0)))
                          (c (if (memq lead (quote (#xC0 #xC1)))
                                 (and (< (1+ i) n)
                                      (+ #x3FFF00 (logior #x80 (ash (logand lead 1) 6)
                                                          (logand (aref b (1+ i)) #x3F))))
                               (and (> len 0) (<= (+ i len) n)
                                    (let ((v (logand lead (aref [0 #x7F #x1F #x0F #x07 0] len)))
                                          (k 1))
                                      (while (< k len)
                                        (setq v (logior (ash v 6) (logand (aref b (+ i k)) #x3F))
                                              k (1+ k)))
                                      v)))))
                     (unless (and c (> len 0) (characterp c))
                       (setq i n chars (list -1)))
                     (push c chars)
                     (setq i (+ i len))))
                 (and (not (memq -1 chars)) (apply #'string (nreverse chars))))
             (with-no-warnings (string-as-multibyte b)))))
    (and s (equal (rhash-fallback--bytes-of s) b)
         (if (multibyte-string-p s) s (string-to-multibyte s)))))

(defun rhash-fallback--float-bits (x)
  "The IEEE-754 bits of the float X, as a natural number."
  (let ((sign (if (< (copysign 1.0 x) 0) 1 0))
        (a (abs x)))
    (+ (ash sign 63)
       (cond
        ((isnan x)
         ;; Emacs prints a NaN's payload (its significand without the
         ;; quiet bit, which Lisp NaNs always have) before ".0e+NaN".
         (let ((s (format "%S" a)))
           (+ (ash #x7FF 52) (ash 1 51)
              (string-to-number (substring s 0 (string-match "\\." s))))))
        ((= a 1.0e+INF) (ash #x7FF 52))
        ((= a 0.0) 0)
        (t (let* ((fe (frexp a)) (e (cdr fe)) (biased (+ e 1022)))
             (if (> biased 0)
                 (+ (ash biased 52)
                    (truncate (ldexp (- (* 2 (car fe)) 1.0) 52)))
               ;; Subnormal: the significand is A * 2^1074.
               (truncate (ldexp a 1074)))))))))

(defun rhash-fallback--bits-float (bits)
  "The float whose IEEE-754 bits are the natural number BITS."
  (let* ((neg (= (ash bits -63) 1))
         (e (logand (ash bits -52) #x7FF))
         (m (logand bits (1- (ash 1 52))))
         (a (cond
             ((= e #x7FF)
              (if (= m 0)
                  1.0e+INF
                ;; A NaN: Lisp gives it the quiet bit; the payload is kept.
                (read (format "%d.0e+NaN" (logand m (1- (ash 1 51)))))))
             ((= e 0) (ldexp (float m) -1074))
             (t (ldexp (float (+ m (ash 1 52))) (- e 1075))))))
    (if neg (- a) a)))

(defun rhash-fallback--put-symbol (s)
  "Insert the symbol S's tag and name."
  (let ((name (symbol-name s)))
    (insert (if (and (multibyte-string-p name) (not (string-match-p "\\`[[:ascii:]]*\\'" name)))
                3 2))
    (let ((b (rhash-fallback--bytes-of name)))
      (rhash-fallback--put-varint (length b))
      (insert b))))

(defun rhash-fallback--put-value (object)
  "Insert the encoding of the plain data OBJECT at point."
  ;; A work list instead of recursion: plain data nests 10000 deep.
  (let ((todo (list object)))
    (while todo
      (let ((x (pop todo)))
        (cond
         ((null x) (insert 0))
         ((eq x t) (insert 1))
         ((symbolp x) (rhash-fallback--put-symbol x))
         ((fixnump x)
          (insert 4)
          (rhash-fallback--put-varint (if (< x 0) (1- (* -2 x)) (* 2 x))))
         ((integerp x)
          (insert 5 (if (< x 0) 1 0))
          (let ((m (abs x)) (bytes nil))
            (while (> m 0) (push (logand m 255) bytes) (setq m (ash m -8)))
            (rhash-fallback--put-varint (length bytes))
            (apply #'insert (nreverse bytes))))
         ((floatp x)
          (insert 6)
          (rhash-fallback--put-le (rhash-fallback--float-bits x) 8))
         ((stringp x)
          (insert (if (multibyte-string-p x) 8 7))
          (let ((b (rhash-fallback--bytes-of x)))
            (rhash-fallback--put-varint (length b))
            (insert b)))
         ((consp x)
          (let ((n 0) (tail x) (elts nil))
            (while (consp tail)
              (push (car tail) elts)
              (setq n (1+ n) tail (cdr tail)))
            (insert 9)
            (rhash-fallback--put-varint n)
            (push tail todo)
            (dolist (e elts) (push e todo))))
         ((vectorp x)
          (insert 10)
          (rhash-fallback--put-varint (length x))
          (let ((i (1- (length x))))
            (while (>= i 0)
              (push (aref x i) todo)
              (setq i (1- i)))))
         (t (signal 'wrong-type-argument (list 'rhash-plain-data-p x))))))))

(defun rhash-fallback--encode (table)
  "The bytes of an rhash table file holding TABLE, a unibyte string.
Signal, before any byte is written, when a key or value is not plain
data."
  (maphash (lambda (k v)
             (rhash-fallback--check-plain k)
             (rhash-fallback--check-plain v))
           table)
  (with-temp-buffer
    (set-buffer-multibyte nil)
    (insert (if (gethash table rhash-fallback--native) 1 0))
    (rhash-fallback--put-symbol (hash-table-test table))
    (maphash (lambda (k v)
               (rhash-fallback--put-value k)
               (rhash-fallback--put-value v))
             table)
    (let ((body-length (1- (point))))
      (goto-char (point-min))
      (insert rhash-fallback--magic)
      (rhash-fallback--put-le 1 4)
      (rhash-fallback--put-le 0 4)
      (rhash-fallback--put-le (hash-table-count table) 8)
      (rhash-fallback--put-le body-length 8)
      (goto-char (point-max))
      (rhash-fallback--put-le (rhash-fallback--crc32 (buffer-string)) 4))
    (buffer-string)))

(defun rhash-save (table file)
  "Write TABLE to FILE; return FILE's expanded name.
TABLE is a table of either storage (a built-in hash table too); its
keys and values must be plain data (see `rhash-plain-data-p'), else
signal and leave FILE untouched.  The data goes to a new file in
FILE's directory, flushed to disk, then renamed over FILE, which
keeps its permissions."
  (rhash-fallback--check table)
  (let* ((file (expand-file-name file))
         ;; Through a symbolic link to the file it names; never over a
         ;; directory or device (the rename would replace it).
         (target (if (file-exists-p file) (file-truename file) file))
         (_ (when (and (file-exists-p target) (not (file-regular-p target)))
              (signal 'file-error (list "Writing rhash table" "Not a regular file" file))))
         (bytes (rhash-fallback--encode table))
         (modes (or (file-modes target)
                    (logand (default-file-modes) #o666)))
         (tmp (make-temp-file (expand-file-name
                               (concat "." (file-name-nondirectory target) ".tmp")
                               (file-name-directory target))))
         (done nil))
    (unwind-protect
        (progn
          (let ((coding-system-for-write 'no-conversion)
                (write-region-inhibit-fsync nil))
            (write-region bytes nil tmp nil 'silent))
          (set-file-modes tmp modes)
          (rename-file tmp target t)
          (setq done t))
      (unless done (ignore-errors (delete-file tmp))))
    file))

(define-error 'rhash-fallback--corrupt "Corrupt")

(defun rhash-fallback--decoder (bytes start end)
  "Return a decoder of the values in BYTES from START to END.
The decoder is a function of no arguments that reads the next value
and signals `rhash-fallback--corrupt' with (WHAT OFFSET) at the first
invalid byte; called with the argument `offset' it returns where it
is."
  (let ((pos start))
    (cl-labels
        ((fail (what) (signal 'rhash-fallback--corrupt (list what pos)))
         (byte () (if (< pos end)
                      (prog1 (aref bytes pos) (setq pos (1+ pos)))
                    (fail "length past the end")))
         (varint ()
           (let ((n 0) (shift 0) (b 128) (count 0))
             (while (>= b 128)
               (setq b (byte) count (1+ count))
               (when (and (> count 1) (= b 0)) (fail "overlong varint"))
               (when (> count 10) (fail "varint too long"))
               (setq n (+ n (ash (logand b 127) shift)) shift (+ shift 7)))
             (when (>= n (ash 1 64)) (fail "varint too large"))
             n))
         (chunk (n)
           (when (> n (- end pos)) (fail "length past the end"))
           (prog1 (substring bytes pos (+ pos n)) (setq pos (+ pos n))))
         (multibyte (b)
           (or (rhash-fallback--from-bytes b)
               (fail "invalid multibyte bytes")))
         (symbol (tag)
           (let* ((b (chunk (varint)))
                  (name (if (= tag 2) b (multibyte b))))
             (when (and (= tag 3) (string-match-p "\\`[[:ascii:]]*\\'" name))
               (fail "ASCII symbol name with tag 3"))
             (when (member name '("nil" "t")) (fail "symbol named nil or t"))
             (intern name)))
         (one ()
           ;; Containers are built with an explicit stack of frames
           ;; [KIND ITEMS LEFT]: KIND list or vector, ITEMS the elements
           ;; read (reversed), LEFT the elements still to read (for a
           ;; list, then its tail).
           (let ((stack nil) (value nil) (have nil) (result nil) (done nil))
             (while (not done)
               (let ((tag-pos pos) (tag (byte)))
                 (pcase tag
                   (0 (setq value nil have t))
                   (1 (setq value t have t))
                   ((or 2 3) (setq value (symbol tag) have t))
                   (4 (let ((z (varint)))
                        (setq value (if (= (logand z 1) 1) (- (ash (1+ z) -1)) (ash z -1)))
                        (unless (fixnump value) (fail "integer out of fixnum range"))
                        (setq have t)))
                   (5 (let* ((sign (byte)) (n (varint)) (m (chunk n)) (v 0) (i (1- n)))
                        (unless (memq sign '(0 1)) (fail "bignum sign"))
                        (when (or (= n 0) (= (aref m (1- n)) 0)) (fail "bignum magnitude"))
                        (while (>= i 0) (setq v (+ (ash v 8) (aref m i)) i (1- i)))
                        (setq value (if (= sign 1) (- v) v))
                        (when (fixnump value) (fail "bignum in fixnum range"))
                        (setq have t)))
                   (6 (let ((m (chunk 8)) (v 0) (i 7))
                        (while (>= i 0) (setq v (+ (ash v 8) (aref m i)) i (1- i)))
                        (setq value (rhash-fallback--bits-float v) have t)))
                   (7 (setq value (chunk (varint)) have t))
                   (8 (setq value (multibyte (chunk (varint))) have t))
                   ((or 9 10)
                    (let ((n (varint)))
                      (when (and (= tag 9) (= n 0)) (fail "empty list"))
                      (when (> n (- end pos)) (fail "length past the end"))
                      (when (>= (length stack) rhash-fallback--max-depth)
                        (fail "nesting too deep"))
                      (if (and (= tag 10) (= n 0))
                          (setq value (vector) have t)
                        (push (vector (if (= tag 9) 'list 'vector) nil n) stack))))
                   (_ (setq pos tag-pos) (fail (format "invalid tag %d" tag))))
                 ;; Hand a finished value to the frames waiting for it.
                 (while have
                   (setq have nil)
                   (if (null stack)
                       (setq result value done t)
                     (let ((f (car stack)))
                       (if (> (aref f 2) 0)
                           (progn (aset f 1 (cons value (aref f 1)))
                                  (aset f 2 (1- (aref f 2)))
                                  (when (and (eq (aref f 0) 'vector) (= (aref f 2) 0))
                                    (pop stack)
                                    (setq value (vconcat (nreverse (aref f 1))) have t)))
                         ;; A list's tail.
                         (when (consp value) (fail "list tail is a list"))
                         (pop stack)
                         (let ((l (nreverse (aref f 1))))
                           (setcdr (last l) value)
                           (setq value l have t))))))))
             result)))
      (lambda (&optional what)
        (if (eq what 'offset) pos (one))))))

(defun rhash-fallback--u (bytes start n)
  "Return the little-endian natural number of N bytes in BYTES at START."
  (let ((v 0) (i (1- n)))
    (while (>= i 0)
      (setq v (+ (ash v 8) (aref bytes (+ start i))) i (1- i)))
    v))

(defun rhash-load (file &rest keyword-args)
  "Return a new table with the test, storage and entries saved in FILE.
KEYWORD-ARGS may give `:storage' to override the saved storage.  A
file that is not a valid rhash table file signals `rhash-file-error'
naming the reason and FILE.

\(fn FILE &rest KEYWORD-ARGS)"
  (let ((rest keyword-args))
    (while rest
      (unless (and (eq (car rest) :storage) (cdr rest))
        (signal 'error (list "Invalid argument list" (car rest))))
      (setq rest (cddr rest))))
  (let* ((file (expand-file-name file))
         (bytes (with-temp-buffer
                  (set-buffer-multibyte nil)
                  (insert-file-contents-literally file)
                  (buffer-string)))
         (size (length bytes))
         (bad (lambda (reason)
                (signal 'rhash-file-error (list "Reading rhash table" reason file)))))
    (unless (and (>= size 8) (equal (substring bytes 0 8) rhash-fallback--magic))
      (funcall bad "not an rhash table file"))
    (when (< size 12) (funcall bad "truncated"))
    (let ((version (rhash-fallback--u bytes 8 4)))
      (unless (= version 1)
        (funcall bad (format "unknown format version %d" version))))
    (when (< size 36) (funcall bad "truncated"))
    (unless (= (rhash-fallback--u bytes 12 4) 0) (funcall bad "unsupported flags"))
    (let ((count (rhash-fallback--u bytes 16 8))
          (body (rhash-fallback--u bytes 24 8)))
      (when (< size (+ 36 body)) (funcall bad "truncated"))
      (when (> size (+ 36 body)) (funcall bad "trailing data"))
      (unless (= (rhash-fallback--crc32 bytes (+ 32 body))
                 (rhash-fallback--u bytes (+ 32 body) 4))
        (funcall bad "checksum mismatch"))
      (when (or (< body 2) (> count (/ (- body 2) 2)))
        (funcall bad "corrupt: entry count"))
      (condition-case err
          (let* ((storage-byte (aref bytes 32))
                 (next (rhash-fallback--decoder bytes 33 (+ 32 body)))
                 (test (progn
                         (unless (memq storage-byte '(0 1))
                           (signal 'rhash-fallback--corrupt (list "storage byte" 32)))
                         (funcall next)))
                 (storage (or (car (rhash-fallback--key-arg :storage keyword-args))
                              (if (= storage-byte 1) 'native 'lisp)))
                 (pairs nil))
            (unless (and (symbolp test) test (not (eq test t)))
              (signal 'rhash-fallback--corrupt
                      (list "test is not a symbol" (funcall next 'offset))))
            (dotimes (_ count)
              (let* ((k (funcall next)) (v (funcall next)))
                (push (cons k v) pairs)))
            (let ((at (funcall next 'offset)))
              (unless (= at (+ 32 body))
                (signal 'rhash-fallback--corrupt (list "bytes left after the entries" at))))
            (let ((table (rhash-make :test test :storage storage)))
              (dolist (p (nreverse pairs))
                (rhash-put (car p) (cdr p) table))
              table))
        (rhash-fallback--corrupt
         (funcall bad (format "corrupt: %s at offset %d" (nth 1 err) (nth 2 err))))))))

(provide 'rhash-fallback)
;;; rhash-fallback.el ends here
