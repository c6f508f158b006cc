;;; bench.el --- rhash vs built-in hash tables, ratios per row  -*- lexical-binding: t; -*-

;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Run by bench/run.sh (`make bench'), which byte-compiles this file
;; with the Emacs under test and calls `bench-main' in batch.  One
;; process per Emacs version times rhash and the built-in tables on
;; the same data, interleaved over several rounds (the side that goes
;; first alternates), with GC held off during timed loops
;; (`gc-cons-threshold' huge, `garbage-collect' right before each timed
;; loop).  Per row it prints the median ns/op of each side and the
;; ratio rhash / built-in (below 1: rhash is faster).  ns/op are gross:
;; they include the loop (an empty loop of the same shape is printed
;; for reference).
;;
;; The markdown goes to stdout, progress to stderr.
;;
;; Environment (all optional):
;;   RHASH_BENCH_SIZES     table sizes                 "1000 100000 1000000"
;;   RHASH_BENCH_ROUNDS    rounds per row (median)     5
;;   RHASH_BENCH_MIN_OPS   ops per timed sample; a pass over n keys is
;;                         repeated ceil(MIN_OPS / n) times    100000
;;   RHASH_BENCH_MAX_OPS   get, put-over and remove rows look up at most
;;                         this many of the n keys per pass (a random
;;                         subset: the keys are shuffled)      200000
;;   RHASH_BENCH_ROW_SECONDS a row stops after the round that passes this
;;                         many seconds (its ratio is marked *)   30
;;   RHASH_BENCH_KEYS      key shapes: fixnum symbol str-fn str-path str-k
;;                         str-word cons                (default: all)
;;   RHASH_BENCH_BIG       sizes >= this run only for RHASH_BENCH_BIG_KEYS
;;                                                      1000000
;;   RHASH_BENCH_BIG_KEYS  key shapes run at big sizes  "fixnum str-k"
;;                         (str-fn and str-path are pathological for
;;                         Emacs 28's string hash, which samples at most
;;                         8 words: ~50 us per built-in op at 10^6)
;;   RHASH_BENCH_WORKLOADS get-hit get-miss put-fresh put-over remove map
;;                         keys                         (default: all)
;;   RHASH_BENCH_BULK_SIZE size of the bulk-operation rows    100000
;;   RHASH_BENCH_BULK_KEYS key shapes of the bulk rows  "fixnum str-fn"
;;   RHASH_BENCH_MEM_SIZES sizes of the bytes/entry rows (one child
;;                         process per side; empty to skip) "100000 1000000"
;;   RHASH_BENCH_MEM_KEYS  key shapes of the bytes/entry rows (the key
;;                         shape barely matters: keys are not counted)
;;                                                      "fixnum str-k"
;;   RHASH_BENCH_SETOPS_SIZES sizes of the bulk and set operation rows
;;                         (`setops')                   "1000 100000"
;;   RHASH_BENCH_SETOPS_KEYS key shapes of those rows  "fixnum symbol str-k"
;;   RHASH_BENCH_SECTIONS  floor main bulk setops mem  (default: all)
;;   RHASH_BENCH_NOP_MODULE an empty C module (built by run.sh) whose
;;                         `bench-nop1' measures the bare module-call floor
;;   RHASH_BENCH_EMACS     the Emacs to run the memory children with

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'rhash)

(declare-function rhash-module-info "rhash-module" ())

(defconst bench--file (or load-file-name buffer-file-name)
  "This file, loaded again by the memory-measuring child processes.")

;;;; Configuration

(defun bench--env (var default)
  "The words of environment variable VAR, or of DEFAULT when unset."
  (let ((s (getenv var)))
    (split-string (if s s default))))

(defun bench--env-ints (var default)
  "The integers in environment variable VAR (or DEFAULT)."
  (mapcar #'string-to-number (bench--env var default)))

(defun bench--env-int (var default)
  "The integer in environment variable VAR, or DEFAULT."
  (let ((s (getenv var)))
    (if (and s (string-match-p "\\`[0-9]+\\'" s)) (string-to-number s) default)))

(defvar bench-sizes (bench--env-ints "RHASH_BENCH_SIZES" "1000 100000 1000000"))
(defvar bench-rounds (max 1 (bench--env-int "RHASH_BENCH_ROUNDS" 5)))
(defvar bench-min-ops (max 1 (bench--env-int "RHASH_BENCH_MIN_OPS" 100000)))
(defvar bench-all-keys '(fixnum symbol str-fn str-path str-k str-word cons))
(defvar bench-keys
  (mapcar #'intern (bench--env "RHASH_BENCH_KEYS" (mapconcat #'symbol-name bench-all-keys " "))))
(defvar bench-big (bench--env-int "RHASH_BENCH_BIG" 1000000))
(defvar bench-big-keys (mapcar #'intern (bench--env "RHASH_BENCH_BIG_KEYS" "fixnum str-k")))
(defvar bench-all-workloads '(get-hit get-miss put-fresh put-over remove map keys))
(defvar bench-workloads
  (mapcar #'intern (bench--env "RHASH_BENCH_WORKLOADS"
                               (mapconcat #'symbol-name bench-all-workloads " "))))
(defvar bench-max-ops (max 1 (bench--env-int "RHASH_BENCH_MAX_OPS" 200000)))
(defvar bench-row-seconds (bench--env-int "RHASH_BENCH_ROW_SECONDS" 30))
(defvar bench-bulk-size (bench--env-int "RHASH_BENCH_BULK_SIZE" 100000))
(defvar bench-bulk-keys (mapcar #'intern (bench--env "RHASH_BENCH_BULK_KEYS" "fixnum str-fn")))
(defvar bench-mem-sizes (bench--env-ints "RHASH_BENCH_MEM_SIZES" "100000 1000000"))
(defvar bench-mem-keys (mapcar #'intern (bench--env "RHASH_BENCH_MEM_KEYS" "fixnum str-k")))
(defvar bench-sections (mapcar #'intern (bench--env "RHASH_BENCH_SECTIONS" "floor main bulk setops mem")))
(defvar bench-setops-sizes (bench--env-ints "RHASH_BENCH_SETOPS_SIZES" "1000 100000"))
(defvar bench-setops-keys (mapcar #'intern (bench--env "RHASH_BENCH_SETOPS_KEYS" "fixnum symbol str-k")))

;;;; Data

(defconst bench--syllables
  (let (l)
    (dolist (c (split-string "b d f g k l m n p r s t v z" " "))
      (dolist (v '("a" "e" "i" "o" "u"))
        (push (concat c v) l)))
    (vconcat (nreverse l)))
  "70 two-letter syllables, the digits of the short words.")

(defun bench--word (i)
  "A short word (2-8 letters) unique to I."
  (let ((n (length bench--syllables)) (parts nil))
    (while (progn (push (aref bench--syllables (% i n)) parts)
                  (setq i (/ i n))
                  (> i 0)))
    (apply #'concat parts)))

(defun bench--key (kind i)
  "Key number I of shape KIND (symbols are made by the caller)."
  (pcase kind
    ('fixnum i)
    ('str-fn (format "my-package--internal-function-%d" i))
    ('str-path (format "/home/user/project/src/module%d/file%d.el" (/ i 100) (% i 100)))
    ('str-k (format "k%011d" i))
    ('str-word (bench--word i))
    ('cons (cons (% i 1000) (/ i 1000)))))

(defun bench--test (kind)
  "The hash table test used for keys of shape KIND."
  (pcase kind ('fixnum 'eql) ('symbol 'eq) (_ 'equal)))

(defun bench--copy-key (k)
  "An `equal' copy of K that is not `eq' to it (for strings and conses)."
  (cond ((stringp k) (copy-sequence k))
        ((consp k) (cons (car k) (cdr k)))
        (t k)))

(defun bench--shuffle (v)
  "Shuffle vector V in place, deterministically; return V."
  (random "rhash-bench")
  (let ((i (1- (length v))))
    (while (> i 0)
      (let* ((j (random (1+ i))) (x (aref v i)))
        (aset v i (aref v j))
        (aset v j x))
      (setq i (1- i))))
  v)

(defun bench--make-key (kind i)
  "Key number I of shape KIND (symbols: a fresh uninterned one)."
  (if (eq kind 'symbol)
      (make-symbol (format "bench-sym-%d" i))
    (bench--key kind i)))

(defun bench--make-keys (kind n &optional offset)
  "A vector of N distinct keys of shape KIND, numbered from OFFSET."
  (let ((v (make-vector n nil)) (o (or offset 0)))
    (dotimes (i n)
      (aset v i (bench--make-key kind (+ o i))))
    v))

(defun bench--data (kind n)
  "Data for shape KIND and size N: a plist of :keys, :hits, :misses.
:hits are the keys again in shuffled order, as fresh copies for
strings and conses; :misses are N other keys, absent from the tables,
in shuffled order too.  Both are allocated in the order they are
read, so that reading them is sequential and only the table's
accesses are random."
  (let* ((keys (bench--make-keys kind n))
         (perm (let ((v (make-vector n 0))) (dotimes (i n) (aset v i i)) (bench--shuffle v)))
         (hits (make-vector n nil))
         (misses (make-vector n nil)))
    (dotimes (j n)
      (aset hits j (bench--copy-key (aref keys (aref perm j)))))
    (dotimes (j n)
      (aset misses j (bench--make-key kind (+ n (aref perm j)))))
    (list :keys keys :hits hits :misses misses)))

;;;; Timed loops (byte-compiled with this file; identical shapes per side)

(defmacro bench--defloop (name form)
  "Define NAME (TABLES KEYS): for each table of the vector TABLES
and each key of the vector KEYS, evaluate FORM with `tbl' standing
for the table, `key' for the key and `i' for its index, and keep its
value (so that the call cannot be optimized away)."
  (let* ((form (cl-subst '(aref keys i) 'key form))
         (inner `(while (< i n)
                   (setq acc ,form)
                   (setq i (1+ i)))))
    `(defun ,name (tables keys)
       (let ((nt (length tables)) (n (length keys)) (r 0) (acc nil))
         (while (< r nt)
           (let (,@(and (memq 'tbl (flatten-tree form)) '((tbl (aref tables r))))
                 (i 0))
             ,inner)
           (setq r (1+ r)))
         acc))))

(bench--defloop bench--empty-loop key)
(bench--defloop bench--get-b (gethash key tbl))
(bench--defloop bench--get-r (rhash-get key tbl))
(bench--defloop bench--put-b (puthash key i tbl))
(bench--defloop bench--put-r (rhash-put key i tbl))
(bench--defloop bench--rem-b (remhash key tbl))
(bench--defloop bench--rem-r (rhash-remove key tbl))
(bench--defloop bench--count-b (hash-table-count tbl))
(bench--defloop bench--count-r (rhash-count tbl))
(bench--defloop bench--p-b (hash-table-p tbl))
(bench--defloop bench--p-r (rhash-p tbl))
(bench--defloop bench--sxhash-b (sxhash-eq key))

(defun bench--lisp-nop (x)
  "Return X (a byte-compiled Lisp function, for the call floor)."
  x)
(bench--defloop bench--lisp-call (bench--lisp-nop key))
(declare-function bench-nop1 nil (x))
(declare-function bench-nop2 nil (x y))
(declare-function bench-nop3 nil (x y z))
(declare-function bench-nop-type-of nil (x))
(declare-function bench-nop-user-ptr nil (x))
(declare-function bench-nop-funcall nil (x))
(declare-function bench-nop-get nil (key table))
(declare-function bench-nop-get-str nil (key table))
(declare-function bench-nop-put nil (key value table))
(declare-function bench-nop-put-fresh nil (key value table))
(declare-function bench-nop-remove nil (key table))
(declare-function bench-nop-read-pairs nil (kv))
(bench--defloop bench--module-nop (bench-nop1 key))
(bench--defloop bench--module-nop2 (bench-nop2 key tbl))
(bench--defloop bench--module-nop3 (bench-nop3 key i tbl))
(bench--defloop bench--module-type-of (bench-nop-type-of tbl))
(bench--defloop bench--module-user-ptr (bench-nop-user-ptr tbl))
(bench--defloop bench--module-funcall (bench-nop-funcall key))
(bench--defloop bench--module-get (bench-nop-get key tbl))
(bench--defloop bench--module-get-str (bench-nop-get-str key tbl))
(bench--defloop bench--module-put (bench-nop-put key i tbl))
(bench--defloop bench--module-put-fresh (bench-nop-put-fresh key i tbl))
(bench--defloop bench--module-remove (bench-nop-remove key tbl))

(defmacro bench--deftable-loop (name form)
  "Define NAME (TABLES): evaluate FORM with TBL bound to each table."
  `(defun ,name (tables)
     (let ((nt (length tables)) (r 0) (acc nil))
       (while (< r nt)
         (let ((tbl (aref tables r)))
           (setq acc ,form))
         (setq r (1+ r)))
       acc)))

(bench--deftable-loop bench--map-b (let ((c 0)) (maphash (lambda (_k _v) (setq c (1+ c))) tbl) c))
(bench--deftable-loop bench--map-r (let ((c 0)) (rhash-map (lambda (_k _v) (setq c (1+ c))) tbl) c))
(bench--deftable-loop bench--keys-b (hash-table-keys tbl))
(bench--deftable-loop bench--keys-r (rhash-keys tbl))

;;;; Bulk operations: rhash entry point vs the Lisp loop on a built-in
;;;; table, and vs the Lisp loop with per-entry rhash calls.

(defun bench--bulk-keys-b (h) (let (l) (maphash (lambda (k _) (push k l)) h) (nreverse l)))
(defun bench--bulk-keys-l (r) (let (l) (rhash-map (lambda (k _) (push k l)) r) (nreverse l)))
(defun bench--bulk-values-b (h) (let (l) (maphash (lambda (_ v) (push v l)) h) (nreverse l)))
(defun bench--bulk-values-l (r) (let (l) (rhash-map (lambda (_ v) (push v l)) r) (nreverse l)))
(defun bench--bulk-alist-b (h) (let (l) (maphash (lambda (k v) (push (cons k v) l)) h) (nreverse l)))
(defun bench--bulk-alist-l (r) (let (l) (rhash-map (lambda (k v) (push (cons k v) l)) r) (nreverse l)))
(defun bench--bulk-plist-b (h)
  (let (l) (maphash (lambda (k v) (push k l) (push v l)) h) (nreverse l)))
(defun bench--bulk-plist-l (r)
  (let (l) (rhash-map (lambda (k v) (push k l) (push v l)) r) (nreverse l)))
(defun bench--bulk-copy-b (h)
  (let ((new (make-hash-table :test (hash-table-test h) :size (hash-table-count h))))
    (maphash (lambda (k v) (puthash k v new)) h)
    new))
(defun bench--bulk-copy-l (r)
  (let ((new (rhash-make :test (rhash-test r) :size (rhash-count r))))
    (rhash-map (lambda (k v) (rhash-put k v new)) r)
    new))
(defun bench--bulk-from-ht-l (h)
  (let ((new (rhash-make :test (hash-table-test h) :size (hash-table-count h))))
    (maphash (lambda (k v) (rhash-put k v new)) h)
    new))
(defun bench--bulk-from-alist-b (alist test)
  (let ((new (make-hash-table :test test)))
    (dolist (p alist) (puthash (car p) (cdr p) new))
    new))
(defun bench--bulk-from-alist-l (alist test)
  (let ((new (rhash-make :test test)))
    (dolist (p alist) (rhash-put (car p) (cdr p) new))
    new))
(defun bench--bulk-from-plist-b (plist test)
  (let ((new (make-hash-table :test test)))
    (while plist (puthash (car plist) (cadr plist) new) (setq plist (cddr plist)))
    new))
(defun bench--bulk-from-plist-l (plist test)
  (let ((new (rhash-make :test test)))
    (while plist (rhash-put (car plist) (cadr plist) new) (setq plist (cddr plist)))
    new))

;;;; Timing

(defun bench--time (thunk)
  "Collect garbage, then return the seconds THUNK takes."
  (garbage-collect)
  (let ((t0 (float-time)))
    (funcall thunk)
    (- (float-time) t0)))

(defun bench--median (xs)
  "The median of the numbers XS."
  (let* ((v (vconcat (sort (copy-sequence xs) #'<))) (n (length v)))
    (if (cl-oddp n) (aref v (/ n 2))
      (/ (+ (aref v (1- (/ n 2))) (aref v (/ n 2))) 2.0))))

(defvar bench--short-rows 0
  "How many rows stopped early at `bench-row-seconds'.")

(defun bench--compare (sides ops &optional rounds)
  "Time the SIDES (a list of setup functions) interleaved over the rounds.
Each setup function prepares its data (untimed) and returns the
thunk to time.  The side that runs first rotates per round.  Return
the median ns per op of each side (OPS ops per thunk call).
ROUNDS defaults to `bench-rounds'.  Rounds stop early (at least one
is done) once the row has taken `bench-row-seconds'; then the
returned list ends with the symbol `short'."
  (let* ((k (length sides))
         (times (make-vector k nil))
         (rounds (or rounds bench-rounds))
         (t0 (float-time))
         (r 0))
    (while (< r rounds)
      (dotimes (j k)
        (let* ((s (% (+ j r) k))
               (thunk (funcall (nth s sides))))
          (push (bench--time thunk) (aref times s))))
      (setq r (1+ r))
      (when (and (< r rounds) (> (- (float-time) t0) bench-row-seconds))
        (bench--log "row stopped after %d of %d rounds (%.0f s)" r rounds (- (float-time) t0))
        (setq bench--short-rows (1+ bench--short-rows))
        (setq rounds 0)))
    (append (mapcar (lambda (ts) (/ (* 1e9 (bench--median ts)) ops)) times)
            (and (= rounds 0) '(short)))))

(defun bench--reps (n)
  "How many passes over N keys make one timed sample."
  (max 1 (ceiling bench-min-ops (float n))))

;;;; Output

(defun bench--print (fmt &rest args)
  "Print FMT with ARGS and a newline to stdout.
\(`send-string-to-terminal' rather than `princ': in batch, `princ' to
stdout makes the next `message' start with an empty line.)"
  (send-string-to-terminal (concat (apply #'format fmt args) "\n")))

(defun bench--ns (x)
  "Format ns X."
  (cond ((null x) "-")
        ((< x 10) (format "%.2f" x))
        ((< x 100) (format "%.1f" x))
        (t (format "%.0f" x))))

(defun bench--ratio (r b)
  "Format the ratio R / B."
  (if (and r b (> b 0)) (format "%.2f" (/ r (float b))) "-"))

(defun bench--row (cells widths)
  "Print a markdown row of CELLS padded to WIDTHS (negative: left-aligned)."
  (bench--print "| %s |"
                (mapconcat #'identity
                           (cl-mapcar (lambda (c w)
                                        (if (< w 0) (string-pad c (- w))
                                          (string-pad c w nil t)))
                                      cells widths)
                           " | ")))

(defun bench--header (cells widths)
  "Print a markdown header row and its rule."
  (bench--row cells widths)
  (bench--print "|%s|" (mapconcat (lambda (w)
                                    (if (< w 0) (make-string (+ 2 (- w)) ?-)
                                      (concat (make-string (1+ w) ?-) ":")))
                                  widths "|")))

(defun bench--log (fmt &rest args)
  "Progress message FMT with ARGS on stderr."
  (apply #'message (concat "bench: " fmt) args))

;;;; Sections

(defun bench--native-p ()
  "Non-nil when the timed loops are native-compiled."
  (and (fboundp 'subr-native-elisp-p)
       (subr-native-elisp-p (symbol-function 'bench--get-b))))

(defun bench--filled-builtin (test keys)
  "A built-in table with TEST holding KEYS (value: the key's index)."
  (let ((h (make-hash-table :test test)))
    (dotimes (i (length keys)) (puthash (aref keys i) i h))
    h))

(defun bench--filled-rhash (test keys)
  "An rhash table with TEST holding KEYS (value: the key's index)."
  (let ((r (rhash-make :test test)))
    (dotimes (i (length keys)) (rhash-put (aref keys i) i r))
    r))

(defconst bench--widths '(-18 -8 8 10 10 6))

(defvar bench--floor-rounds (max 15 (* 3 bench-rounds))
  "Rounds of the floor rows (they are cheap, and small numbers are noisy).")

(defun bench-floor ()
  "The call floor: empty loop, Lisp call, module calls, vs built-ins."
  (let* ((keys (bench--make-keys 'fixnum 1000))
         (h (bench--filled-builtin 'eql keys))
         (r (bench--filled-rhash 'eql keys))
         (hs (make-vector (bench--reps 1000) h))
         (rs (make-vector (bench--reps 1000) r))
         ;; String keys (shape str-k), looked up through equal copies.
         (skeys (bench--make-keys 'str-k 1000))
         (slook (vconcat (mapcar #'bench--copy-key skeys)))
         (shs (make-vector (bench--reps 1000) (bench--filled-builtin 'equal skeys)))
         (srs (make-vector (bench--reps 1000) (bench--filled-rhash 'equal skeys)))
         (ops (* 1000 (length hs)))
         (nop (fboundp 'bench-nop1)))
    (cl-flet ((fresh-b () (vconcat (mapcar (lambda (_) (make-hash-table :test 'eql)) hs)))
              (fresh-r () (vconcat (mapcar (lambda (_) (rhash-make :test 'eql)) hs)))
              (full-b () (vconcat (mapcar (lambda (_) (bench--filled-builtin 'eql keys)) hs)))
              (full-r () (vconcat (mapcar (lambda (_) (bench--filled-rhash 'eql keys)) hs))))
    (bench--log "floor")
    (bench--print "\n**Call floor** (ns per call, loop included; median of %d rounds of %d calls):\n"
                  bench--floor-rounds ops)
    (bench--header '("call" "built-in" "ns" "rhash / module" "ns" "ratio") '(-26 -22 6 -28 6 6))
    (let ((rows
           `(("empty loop (aref + setq)" "-" ,(lambda () (lambda () (bench--empty-loop hs keys)))
              "-" nil)
             ("Lisp call, 1 arg" "(bench--lisp-nop k)" ,(lambda () (lambda () (bench--lisp-call hs keys)))
              "-" nil)
             ("empty module fn, 1 arg" "(hash-table-p h)" ,(lambda () (lambda () (bench--p-b hs keys)))
              "(bench-nop1 k) [C]"
              ,(and nop (lambda () (lambda () (bench--module-nop rs keys)))))
             ("+ env->type_of" "(hash-table-p h)" ,(lambda () (lambda () (bench--p-b hs keys)))
              "(bench-nop-type-of r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-type-of rs keys)))))
             ("+ get_user_finalizer/ptr" "(hash-table-p h)" ,(lambda () (lambda () (bench--p-b hs keys)))
              "(bench-nop-user-ptr r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-user-ptr rs keys)))))
             ("+ env->funcall sxhash-eq" "(sxhash-eq k)" ,(lambda () (lambda () (bench--sxhash-b hs keys)))
              "(bench-nop-funcall k) [C]"
              ,(and nop (lambda () (lambda () (bench--module-funcall rs keys)))))
             ("type check" "(hash-table-p h)" ,(lambda () (lambda () (bench--p-b hs keys)))
              "(rhash-p r)" ,(lambda () (lambda () (bench--p-r rs keys))))
             ("1 table arg" "(hash-table-count h)" ,(lambda () (lambda () (bench--count-b hs keys)))
              "(rhash-count r)" ,(lambda () (lambda () (bench--count-r rs keys))))
             ("minimal get's env calls" "(gethash k h)" ,(lambda () (lambda () (bench--get-b hs keys)))
              "(bench-nop-get k r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-get rs keys)))))
             ("get fixnum, 1000 entries" "(gethash k h)" ,(lambda () (lambda () (bench--get-b hs keys)))
              "(rhash-get k r)" ,(lambda () (lambda () (bench--get-r rs keys))))
             ("minimal string get's env calls" "(gethash s h)" ,(lambda () (lambda () (bench--get-b shs slook)))
              "(bench-nop-get-str s r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-get-str srs slook)))))
             ("get str-k, 1000 entries" "(gethash s h)" ,(lambda () (lambda () (bench--get-b shs slook)))
              "(rhash-get s r)" ,(lambda () (lambda () (bench--get-r srs slook))))
             ("empty module fn, 3 args (put's shape)" "(puthash k v h)" ,(lambda () (lambda () (bench--put-b hs keys)))
              "(bench-nop3 k v r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-nop3 rs keys)))))
             ("minimal put-over's env calls" "(puthash k v h)" ,(lambda () (lambda () (bench--put-b hs keys)))
              "(bench-nop-put k v r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-put rs keys)))))
             ("put-over fixnum, 1000 entries" "(puthash k v h)" ,(lambda () (lambda () (bench--put-b hs keys)))
              "(rhash-put k v r)" ,(lambda () (lambda () (bench--put-r rs keys))))
             ("minimal put-fresh's env calls" "(puthash k v h) new"
              ,(lambda () (let ((ts (fresh-b))) (lambda () (bench--put-b ts keys))))
              "(bench-nop-put-fresh k v r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-put-fresh rs keys)))))
             ("put-fresh fixnum, 1000 entries" "(puthash k v h) new"
              ,(lambda () (let ((ts (fresh-b))) (lambda () (bench--put-b ts keys))))
              "(rhash-put k v r) new" ,(lambda () (let ((ts (fresh-r))) (lambda () (bench--put-r ts keys)))))
             ("empty module fn, 2 args (remove's shape)" "(remhash k h) full"
              ,(lambda () (let ((ts (full-b))) (lambda () (bench--rem-b ts keys))))
              "(bench-nop2 k r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-nop2 rs keys)))))
             ("minimal remove's env calls" "(remhash k h) full"
              ,(lambda () (let ((ts (full-b))) (lambda () (bench--rem-b ts keys))))
              "(bench-nop-remove k r) [C]"
              ,(and nop (lambda () (lambda () (bench--module-remove rs keys)))))
             ("remove fixnum, 1000 entries" "(remhash k h) full"
              ,(lambda () (let ((ts (full-b))) (lambda () (bench--rem-b ts keys))))
              "(rhash-remove k r) full" ,(lambda () (let ((ts (full-r))) (lambda () (bench--rem-r ts keys))))))))
      (dolist (row rows)
        (pcase-let* ((`(,label ,bname ,bside ,rname ,rside) row)
                     (`(,b ,rr) (bench--compare (delq nil (list bside rside)) ops
                                                bench--floor-rounds)))
          (bench--row (list label bname (bench--ns b) rname (bench--ns rr)
                            (bench--ratio rr b))
                      '(-26 -22 6 -28 6 6))))))
    (unless nop
      (bench--print "\n(no empty C module: run.sh needs a C compiler and emacs-module.h)"))))

(defun bench--prefix (v m)
  "The first M elements of vector V (V itself when that is all of it)."
  (if (>= m (length v)) v (substring v 0 m)))

(defun bench--workload-sides (w test data n)
  "Setup functions (built-in rhash) and ops for workload W on DATA of size N."
  (let* ((keys (plist-get data :keys))
         (cap (min n bench-max-ops))
         (hits (bench--prefix (plist-get data :hits) cap))
         (misses (bench--prefix (plist-get data :misses) cap))
         (lookups (memq w '(get-hit get-miss put-over remove)))
         (reps (bench--reps (if lookups cap n)))
         (filled-b nil) (filled-r nil))
    (when (memq w '(get-hit get-miss put-over map keys))
      (setq filled-b (bench--filled-builtin test keys)
            filled-r (bench--filled-rhash test keys)))
    (cl-flet ((same (x) (make-vector reps x))
              (fresh-b () (let ((v (make-vector reps nil)))
                            (dotimes (i reps) (aset v i (make-hash-table :test test)))
                            v))
              (fresh-r () (let ((v (make-vector reps nil)))
                            (dotimes (i reps) (aset v i (rhash-make :test test)))
                            v))
              (full-b () (let ((v (make-vector reps nil)))
                           (dotimes (i reps) (aset v i (bench--filled-builtin test keys)))
                           v))
              (full-r () (let ((v (make-vector reps nil)))
                           (dotimes (i reps) (aset v i (bench--filled-rhash test keys)))
                           v)))
      (list
       (pcase w
         ('get-hit
          (list (lambda () (let ((ts (same filled-b))) (lambda () (bench--get-b ts hits))))
                (lambda () (let ((ts (same filled-r))) (lambda () (bench--get-r ts hits))))))
         ('get-miss
          (list (lambda () (let ((ts (same filled-b))) (lambda () (bench--get-b ts misses))))
                (lambda () (let ((ts (same filled-r))) (lambda () (bench--get-r ts misses))))))
         ('put-fresh
          (list (lambda () (let ((ts (fresh-b))) (lambda () (bench--put-b ts keys))))
                (lambda () (let ((ts (fresh-r))) (lambda () (bench--put-r ts keys))))))
         ('put-over
          (list (lambda () (let ((ts (same filled-b))) (lambda () (bench--put-b ts hits))))
                (lambda () (let ((ts (same filled-r))) (lambda () (bench--put-r ts hits))))))
         ('remove
          (list (lambda () (let ((ts (full-b))) (lambda () (bench--rem-b ts hits))))
                (lambda () (let ((ts (full-r))) (lambda () (bench--rem-r ts hits))))))
         ('map
          (list (lambda () (let ((ts (same filled-b))) (lambda () (bench--map-b ts))))
                (lambda () (let ((ts (same filled-r))) (lambda () (bench--map-r ts))))))
         ('keys
          (list (lambda () (let ((ts (same filled-b))) (lambda () (bench--keys-b ts))))
                (lambda () (let ((ts (same filled-r))) (lambda () (bench--keys-r ts)))))))
       (* reps (if lookups cap n))))))

(defconst bench--main-widths '(-9 -8 -5 7 8 8 6))

(defun bench-main-table ()
  "Time every workload, key shape and size; print the rows."
  (bench--print "\n**Operations** (ns/op, median of %d rounds; ratio = rhash / built-in, < 1 means rhash is faster):\n"
                bench-rounds)
  (bench--header '("workload" "keys" "test" "n" "built-in" "rhash" "ratio") bench--main-widths)
  (let ((empties nil))
    (dolist (n bench-sizes)
      (let* ((ekeys (bench--make-keys 'fixnum n))
             (reps (bench--reps n))
             (ets (make-vector reps nil)))
        (push (cons n (car (bench--compare
                            (list (lambda () (lambda () (bench--empty-loop ets ekeys))))
                            (* n reps))))
              empties))
      (dolist (kind bench-keys)
        (when (or (< n bench-big) (memq kind bench-big-keys))
          (bench--log "data %s %d" kind n)
          (let ((data (bench--data kind n))
                (test (bench--test kind)))
            (dolist (w bench-workloads)
              (bench--log "%s %s %d" w kind n)
              (pcase-let* ((`(,sides ,ops) (bench--workload-sides w test data n))
                           (`(,b ,r ,short) (bench--compare sides ops)))
                (bench--row (list (symbol-name w) (symbol-name kind) (symbol-name test)
                                  (number-to-string n) (bench--ns b) (bench--ns r)
                                  (concat (bench--ratio r b) (if short "*" "")))
                            bench--main-widths)))
            (setq data nil)
            (garbage-collect)))))
    (bench--print "\nEmpty loop of the same shape (aref + setq), ns/op: %s.  \
get/put-over/remove look up min(n, %d) shuffled keys per pass (string and cons \
lookups use `equal' copies, not the stored objects); put-fresh fills new tables \
made without :size; map counts entries in a closure; keys is `hash-table-keys' \
vs `rhash-keys'.%s"
                  (mapconcat (lambda (e) (format "n=%d: %s" (car e) (bench--ns (cdr e))))
                             (nreverse empties) ", ")
                  bench-max-ops
                  (if (> bench--short-rows 0)
                      (format "  * = row stopped after the round that passed %d s."
                              bench-row-seconds)
                    ""))))

(defun bench-bulk ()
  "Bulk entry points vs the equivalent Lisp loops."
  (bench--print "\n**Bulk operations** (ns/entry, median of %d rounds; n=%d).  \
\"Lisp loop\" is the same result built with maphash/dolist + push/puthash on a \
built-in table; ratio = rhash / Lisp loop (target <= 0.33, i.e. rhash >= 3x faster); \
\"rhash loop\" is the Lisp loop with per-entry rhash calls (rhash-map / rhash-put):\n"
                bench-rounds bench-bulk-size)
  (let ((widths '(-33 -8 9 9 10 6 7)))
    (bench--header '("operation" "keys" "Lisp loop" "rhash" "rhash loop" "ratio" "speedup") widths)
    (dolist (kind bench-bulk-keys)
      (bench--log "bulk %s" kind)
      (let* ((n bench-bulk-size)
             (test (bench--test kind))
             (keys (bench--make-keys kind n))
             (h (bench--filled-builtin test keys))
             (r (bench--filled-rhash test keys))
             (alist (let (l) (dotimes (i n) (push (cons (aref keys (- n i 1)) (- n i 1)) l)) l))
             (plist (let (l) (dotimes (i n) (push (- n i 1) l) (push (aref keys (- n i 1)) l)) l))
             (rows
              `(("rhash-keys" ,(lambda () (bench--bulk-keys-b h))
                 ,(lambda () (rhash-keys r)) ,(lambda () (bench--bulk-keys-l r)))
                ("rhash-values" ,(lambda () (bench--bulk-values-b h))
                 ,(lambda () (rhash-values r)) ,(lambda () (bench--bulk-values-l r)))
                ("rhash-to-alist" ,(lambda () (bench--bulk-alist-b h))
                 ,(lambda () (rhash-to-alist r)) ,(lambda () (bench--bulk-alist-l r)))
                ("rhash-to-plist" ,(lambda () (bench--bulk-plist-b h))
                 ,(lambda () (rhash-to-plist r)) ,(lambda () (bench--bulk-plist-l r)))
                ("rhash-copy" ,(lambda () (bench--bulk-copy-b h))
                 ,(lambda () (rhash-copy r)) ,(lambda () (bench--bulk-copy-l r)))
                ("rhash-copy vs copy-hash-table (C)" ,(lambda () (copy-hash-table h))
                 ,(lambda () (rhash-copy r)) nil)
                ("rhash-from-hash-table" ,(lambda () (bench--bulk-copy-b h))
                 ,(lambda () (rhash-from-hash-table h)) ,(lambda () (bench--bulk-from-ht-l h)))
                ("rhash-from-alist" ,(lambda () (bench--bulk-from-alist-b alist test))
                 ,(lambda () (rhash-from-alist alist :test test))
                 ,(lambda () (bench--bulk-from-alist-l alist test)))
                ("rhash-from-plist" ,(lambda () (bench--bulk-from-plist-b plist test))
                 ,(lambda () (rhash-from-plist plist :test test))
                 ,(lambda () (bench--bulk-from-plist-l plist test)))
                ,@(and (fboundp 'bench-nop-read-pairs) (eq kind 'fixnum)
                       (let ((kv (vconcat plist)))
                         `(("from-*: read pairs only [C]" ,(lambda () (bench--bulk-from-plist-b plist test))
                            ,(lambda () (bench-nop-read-pairs kv)) nil)))))))
        (dolist (row rows)
          (pcase-let* ((`(,label ,b ,rr ,l) row)
                       (sides (mapcar (lambda (f) (and f (lambda () f))) (list b rr l)))
                       (res (bench--compare (delq nil sides) n))
                       (`(,tb ,tr ,tl) res))
            (bench--row (list label (symbol-name kind) (bench--ns tb) (bench--ns tr)
                              (bench--ns tl) (bench--ratio tr tb)
                              (if (and tr (> tr 0)) (format "%.1fx" (/ tb tr)) "-"))
                        widths)))))))

;;;; Bulk and set operations (issue 10): one call vs the idiomatic Lisp loop

(defun bench--so-get-many (keys h)
  "`rhash-get-many' as a Lisp loop over built-in H."
  (mapcar (lambda (k) (gethash k h)) keys))
(defun bench--so-put-many (keys vals h)
  "`rhash-put-many' as a Lisp loop into built-in H."
  (while keys (puthash (car keys) (car vals) h) (setq keys (cdr keys) vals (cdr vals)))
  h)
(defun bench--so-merge (h src)
  "`rhash-merge' as a Lisp loop."
  (maphash (lambda (k v) (puthash k v h)) src)
  h)
(defun bench--so-has (k h)
  "Non-nil if H holds K."
  (not (eq (gethash k h 'bench--none) 'bench--none)))
(defun bench--so-union (a b)
  "`rhash-union' as a Lisp loop."
  (let ((r (make-hash-table :test (hash-table-test a))))
    (maphash (lambda (k v) (puthash k v r)) a)
    (maphash (lambda (k v) (unless (bench--so-has k a) (puthash k v r))) b)
    r))
(defun bench--so-filter (a b keep)
  "`rhash-intersection' (KEEP) or `rhash-difference' as a Lisp loop."
  (let ((r (make-hash-table :test (hash-table-test a))))
    (maphash (lambda (k v) (when (eq keep (bench--so-has k b)) (puthash k v r))) a)
    r))
(defun bench--so-equal (a b)
  "`rhash-equal' as a Lisp loop."
  (and (= (hash-table-count a) (hash-table-count b))
       (catch 'bench--done
         (maphash (lambda (k v)
                    (unless (and (bench--so-has k b) (equal v (gethash k b)))
                      (throw 'bench--done nil)))
                  a)
         t)))
(defun bench--so-tally (seq test)
  "`rhash-tally' as the `dolist' + `cl-incf' loop."
  (let ((h (make-hash-table :test test)))
    (dolist (x seq) (cl-incf (gethash x h 0)))
    h))

(defun bench-setops ()
  "Bulk and set operations vs the Lisp loops over built-in tables."
  (bench--print "\n**Bulk and set operations** (ns per element of the input, median of \
%d rounds).  \"Lisp\" is the idiomatic loop over built-in tables \
(maphash/gethash/puthash, dolist + cl-incf gethash, seq-uniq, delete-dups); \
A holds keys 0..n-1, B keys n/2..3n/2-1; tally and uniq read n elements \
drawn from n/10 distinct keys.  ratio = rhash / Lisp (targets: <= 0.2 for \
get-many..equal, <= 0.33 for tally and uniq):\n" bench-rounds)
  (let ((widths '(-24 -7 7 9 9 6 7)))
    (bench--header '("operation" "keys" "n" "Lisp" "rhash" "ratio" "speedup") widths)
    (dolist (n bench-setops-sizes)
      (dolist (kind bench-setops-keys)
        (bench--log "setops %s %d" kind n)
        (let* ((test (bench--test kind))
               (all (bench--make-keys kind (+ n (/ n 2))))
               (ka (cl-subseq all 0 n))
               (kb (cl-subseq all (/ n 2)))
               (ha (bench--filled-builtin test ka))
               (hb (bench--filled-builtin test kb))
               (ra (rhash-from-hash-table ha))
               (rb (rhash-from-hash-table hb))
               (keys (append (bench--shuffle (copy-sequence ka)) nil))
               (vals (number-sequence 1 n))
               (seq (let (l) (dotimes (i n) (push (aref ka (% (* i 7919) (max 1 (/ n 10)))) l)) l))
               (reps (max 1 (/ (bench--reps n) 4)))
               (rows
                `(("get-many" ,(lambda () (bench--so-get-many keys ha)) ,(lambda () (rhash-get-many keys ra)))
                  ("put-many (fresh table)"
                   ,(lambda () (bench--so-put-many keys vals (make-hash-table :test test)))
                   ,(lambda () (rhash-put-many keys vals (rhash-make :test test))))
                  ("merge (B into copy of A)" :setup
                   ,(lambda () (let ((h (copy-hash-table ha))) (lambda () (bench--so-merge h hb))))
                   ,(lambda () (let ((r (rhash-copy ra))) (lambda () (rhash-merge r rb)))))
                  ("union" ,(lambda () (bench--so-union ha hb)) ,(lambda () (rhash-union ra rb)))
                  ("intersection" ,(lambda () (bench--so-filter ha hb t)) ,(lambda () (rhash-intersection ra rb)))
                  ("difference" ,(lambda () (bench--so-filter ha hb nil)) ,(lambda () (rhash-difference ra rb)))
                  ("equal (A vs copy)" ,(let ((c (copy-hash-table ha))) (lambda () (bench--so-equal ha c)))
                   ,(let ((c (rhash-copy ra))) (lambda () (rhash-equal ra c))))
                  ("tally" ,(lambda () (bench--so-tally seq test)) ,(lambda () (rhash-tally seq :test test)))
                  ("uniq vs delete-dups" :setup
                   ,(lambda () (let ((l (copy-sequence seq))) (lambda () (delete-dups l))))
                   ,(lambda () (lambda () (rhash-uniq seq test))))
                  ,@(and (<= n 1000)
                         `(("uniq vs seq-uniq" ,(lambda () (seq-uniq seq test))
                            ,(lambda () (rhash-uniq seq test))))))))
          (dolist (row rows)
            (pcase-let* ((`(,label . ,rest) row)
                         (setup (eq (car rest) :setup))
                         (`(,b ,r) (if setup (cdr rest) rest))
                         ;; Each side: a setup function returning the thunk.
                         (mk (lambda (f)
                               (lambda ()
                                 (let ((thunk (if setup (funcall f) f)))
                                   (if setup thunk
                                     (lambda () (dotimes (_ reps) (funcall thunk))))))))
                         (per (if setup n (* n reps)))
                         (`(,tb ,tr) (bench--compare (list (funcall mk b) (funcall mk r)) per)))
              (bench--row (list label (symbol-name kind) (number-to-string n)
                                (bench--ns tb) (bench--ns tr) (bench--ratio tr tb)
                                (if (and tr (> tr 0)) (format "%.1fx" (/ tb tr)) "-"))
                          widths))))))))

;;;; Memory

(declare-function rhash--stats "rhash-module" (table))

(defun bench--rss ()
  "Resident set size of this process in bytes (from /proc/self/statm)."
  (with-temp-buffer
    (insert-file-contents "/proc/self/statm")
    (* 4096 (nth 1 (mapcar #'string-to-number (split-string (buffer-string)))))))

(defun bench--lisp-bytes ()
  "Live bytes in the Lisp heap, from `garbage-collect' (malloc heap excluded)."
  (let ((sum 0))
    (dolist (e (garbage-collect))
      (when (and (consp e) (not (eq (car e) 'heap)) (numberp (nth 1 e)) (numberp (nth 2 e)))
        (setq sum (+ sum (* (nth 1 e) (nth 2 e))))))
    sum))

(defun bench-memory-child (kind n side)
  "In a child Emacs: print (RSS-DELTA LISP-DELTA RUST-EST) for a table.
The table of N keys of shape KIND is built on SIDE (\"builtin\" or
\"rhash\") after the keys exist; RUST-EST is rhash's Rust-side
arrays from `rhash--stats' (16 bytes per entry slot + 4 per index slot)."
  (let* ((kind (intern kind))
         (keys (bench--make-keys kind n))
         (test (bench--test kind))
         (lisp0 (bench--lisp-bytes))
         (rss0 (bench--rss))
         (tbl (if (equal side "rhash") (bench--filled-rhash test keys)
                (bench--filled-builtin test keys)))
         (lisp1 (bench--lisp-bytes))
         (rss1 (bench--rss))
         (rust (if (equal side "rhash")
                   (let ((s (rhash--stats tbl))) (+ (* 16 (nth 0 s)) (* 4 (nth 3 s))))
                 0)))
    (ignore tbl)
    (princ (format "%S\n" (list (- rss1 rss0) (- lisp1 lisp0) rust)))))

(defun bench--memory-run (kind n side)
  "Run `bench-memory-child' in a fresh Emacs; return its list or nil."
  (let ((emacs (or (getenv "RHASH_BENCH_EMACS")
                   (expand-file-name invocation-name invocation-directory))))
    (with-temp-buffer
      (let ((status (call-process emacs nil (list t nil) nil "-Q" "--batch"
                                  "-L" (file-name-directory bench--file)
                                  "-l" bench--file
                                  "--eval" (format "(bench-memory-child %S %d %S)"
                                                   (symbol-name kind) n side))))
        (goto-char (point-max))
        (when (and (eq status 0) (re-search-backward "^(" nil t))
          (read (current-buffer)))))))

(defun bench-memory ()
  "Bytes per entry of both sides, each measured in its own process."
  (bench--print "\n**Memory** (bytes/entry, table of n entries built with default size, \
each side in a fresh child process; keys and fixnum values exist before and are not \
counted).  RSS = resident-set delta (/proc/self/statm) after `garbage-collect`, \
the fair total; Lisp = live Lisp-heap delta from `garbage-collect` (Emacs 30 keeps \
built-in hash tables' arrays outside the Lisp heap, so its built-in Lisp column is ~0); \
rust = rhash's Rust arrays from `rhash--stats` (16 B/entry slot + 4 B/index slot):\n")
  (let ((widths '(-8 8 9 9 9 9 9 9)))
    (bench--header '("keys" "n" "b RSS" "b Lisp" "r RSS" "r Lisp" "r rust" "RSS ratio") widths)
    (dolist (n bench-mem-sizes)
      (dolist (kind bench-mem-keys)
        (progn
          (bench--log "memory %s %d" kind n)
          (let ((b (bench--memory-run kind n "builtin"))
                (r (bench--memory-run kind n "rhash")))
            (cl-flet ((per (x) (if x (let ((v (/ x (float n))))
                                       (format "%.1f" (if (< (abs v) 0.05) 0.0 v)))
                                 "?")))
              (bench--row (list (symbol-name kind) (number-to-string n)
                                (per (nth 0 b)) (per (nth 1 b))
                                (per (nth 0 r)) (per (nth 1 r)) (per (nth 2 r))
                                (bench--ratio (nth 0 r) (nth 0 b)))
                          widths))))))))

;;;; Entry

(defun bench--warm-up ()
  "Run the get loops for a moment, so the first row is not the one
that pays for a cold CPU and cold caches."
  (let* ((keys (bench--make-keys 'fixnum 1000))
         (hs (make-vector 20 (bench--filled-builtin 'eql keys)))
         (rs (make-vector 20 (bench--filled-rhash 'eql keys)))
         (t0 (float-time)))
    (while (< (- (float-time) t0) 0.5)
      (bench--get-b hs keys)
      (bench--get-r rs keys))))

(defun bench-main ()
  "Run the selected sections and print markdown on stdout."
  (setq gc-cons-threshold most-positive-fixnum)
  (let ((nop (getenv "RHASH_BENCH_NOP_MODULE")))
    (when (and nop (file-exists-p nop))
      (module-load nop)))
  (let ((native (bench--native-p)))
    (bench--print "\n### Emacs %s, %s callers, rhash on the %s\n" emacs-version
                  (if native "native-compiled" "byte-compiled")
                  (if (plist-get (rhash-module-info) :direct)
                      "direct path"
                    (format "official path (%s)"
                            (plist-get (rhash-module-info) :direct-reason))))
    (bench--print "%s; rounds %d, >= %d ops per timed sample, sizes %s, GC before each timed loop."
                  (format-time-string "%Y-%m-%d") bench-rounds bench-min-ops
                  (mapconcat #'number-to-string bench-sizes " ")))
  (let ((t0 (float-time)))
    (bench--warm-up)
    (when (memq 'floor bench-sections) (bench-floor))
    (when (memq 'main bench-sections) (bench-main-table))
    (when (memq 'bulk bench-sections) (bench-bulk))
    (when (memq 'setops bench-sections) (bench-setops))
    (when (and (memq 'mem bench-sections) bench-mem-sizes) (bench-memory))
    (bench--log "done in %.0f s" (- (float-time) t0))))

(provide 'bench)
;;; bench.el ends here
