;;; rhash-diff-test.el --- Differential tests: rhash vs built-in hash tables  -*- lexical-binding: t; -*-

;; SPDX-License-Identifier: GPL-3.0-or-later

;;; Commentary:

;; Each test runs the same seeded random sequence of operations on an
;; rhash table and on a built-in hash table made with the same
;; arguments.  It compares every return value (the identical object
;; with `eq'; errors by symbol and data; throws), the count and
;; `rhash-size' >= count after every operation, and every 500
;; operations and at the end the whole iteration order (`rhash-map',
;; `rhash-keys', `rhash-values', `rhash-to-alist', `rhash-to-plist'
;; against `maphash'), the test, weakness and emptiness, and a lookup of
;; every stored key.
;;
;; Operations: put, get with and without DEFAULT (a unique default
;; object, so absent and present-with-nil differ), remove, contains-p
;; (against a sentinel `gethash'), clear, copy (one pair continues, the
;; other is checked later for independence), `rhash-to-hash-table',
;; `rhash-from-hash-table', `rhash-from-alist' / `rhash-from-plist'
;; (round trips, and lists with duplicates against repeated `puthash'),
;; garbage collection, drains (remove everything, maybe clear the empty
;; table), bursts of thousands of new keys, and walks whose function
;; sets or removes the current key, removes every other key, adds keys,
;; makes random changes, clears the table (maybe adding keys after) or
;; throws; each call's key and value are compared with `maphash' doing
;; the same.  The tables grow and shrink in alternating phases.
;;
;; Keys come from a pool with the awkward cases (fixnum and bignum
;; limits, signed zeros, NaNs, infinities, unibyte / multibyte /
;; propertized / NUL / raw-byte strings, uninterned symbols, markers,
;; overlays, closures, records, bool-vectors, char-tables, circular and
;; very deep lists ...) and fresh equal copies.  Keys are never mutated
;; after insertion here.
;;
;; The two user-test runs count calls of the user's functions per
;; operation: the compare function must never see an `eq' key nor get
;; its arguments in the other order, the hash function runs as often as
;; with the built-in; with a hash unique per `equal' class the compare
;; counts are exactly the built-in's, with a hash of four values
;; (string, float, fixnum, bignum) they are equal on a miss and bounded by
;; the colliding entries on a hit (probe order may differ).  Planted
;; keys make the hash function signal or throw and the compare function
;; signal.
;;
;; Environment:
;;   RHASH_DIFF_SEED  an integer (replays a reported failure) or
;;                    `random' (each test draws and prints its seed);
;;                    default: a fixed seed per test.
;;   RHASH_DIFF_OPS   operations per test (default
;;                    `rhash-diff-default-ops').
;; A seed replays the same operations; rhash's internal probe order
;; still depends on object addresses (symbols, buffers), as built-in
;; hashing does.
;;
;; Intended differences, accounted for here: `rhash-keys' is in
;; iteration order (29+'s `hash-table-keys' is reversed, so we compare
;; with `maphash' order directly); rhash tables are never weak; and
;; `rhash-from-hash-table' cannot see the source's free places, so its
;; twin is a fresh built-in table filled in iteration order.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'rhash)

(defconst rhash-diff-default-ops 100000
  "Operations per test when RHASH_DIFF_OPS is not set.")

(defconst rhash-diff--check-every 500
  "Compare the whole tables every this many operations.")

(defconst rhash-diff--log-size 20
  "How many recent operations a failure report shows.")

;;;; A small PRNG (xorshift32), the same in every Emacs version

(defvar rhash-diff--state 1
  "State of the xorshift32 generator, a nonzero 32-bit integer.")

(defsubst rhash-diff--next ()
  "Advance the generator and return its new 32-bit state."
  (let ((x rhash-diff--state))
    (setq x (logxor x (logand (ash x 13) #xFFFFFFFF)))
    (setq x (logxor x (ash x -17)))
    (setq x (logxor x (logand (ash x 5) #xFFFFFFFF)))
    (setq rhash-diff--state x)))

(defsubst rhash-diff--rand (n)
  "Return a pseudo-random integer in [0, N)."
  (% (rhash-diff--next) n))

(defun rhash-diff--set-seed (seed)
  "Start the generator from integer SEED."
  (let ((s (logand (logxor seed (ash seed -32)) #xFFFFFFFF)))
    (setq rhash-diff--state (if (zerop s) #x9E3779B9 s)))
  (dotimes (_ 8) (rhash-diff--next)))

(defun rhash-diff--seed (default)
  "The seed for this run: RHASH_DIFF_SEED, or DEFAULT."
  (let ((env (getenv "RHASH_DIFF_SEED")))
    (cond ((or (null env) (equal env "")) default)
          ((equal env "random") (random t) (1+ (random 2000000000)))
          ((string-match-p "\\`[-+]?[0-9]+\\'" env) (string-to-number env))
          (t (error "RHASH_DIFF_SEED must be an integer or `random', not %S"
                    env)))))

(defun rhash-diff--ops ()
  "The number of operations per test: RHASH_DIFF_OPS or the default."
  (let ((env (getenv "RHASH_DIFF_OPS")))
    (if (and env (string-match-p "\\`[0-9]+\\'" env))
        (string-to-number env)
      rhash-diff-default-ops)))

;;;; User-defined tests, with call counters

(defvar rhash-diff--side nil
  "Which side is running: 0 for rhash, 1 for the built-in, nil: not counted.")

(defvar rhash-diff--opkey nil
  "The key of the basic operation in progress, to check argument order.")

(defvar rhash-diff--counts (make-vector 8 0)
  "Calls of the user functions per side: [HASH CMP EQ-CMP REVERSED-CMP] x 2.")

(defvar rhash-diff--registry (make-hash-table :test 'equal)
  "Maps each pool key to the number of its `equal' class.")

(defun rhash-diff--count-reset ()
  "Zero the call counters."
  (fillarray rhash-diff--counts 0))

(defsubst rhash-diff--count (j)
  "Count a call of kind J on the current side."
  (let ((s rhash-diff--side))
    (when s
      (let ((i (+ (* 4 s) j)))
        (aset rhash-diff--counts i (1+ (aref rhash-diff--counts i)))))))

(defun rhash-diff--class (x)
  "The `equal' class number of pool key X."
  (or (gethash x rhash-diff--registry)
      (error "rhash-diff: key not in the registry: %S" x)))

(define-error 'rhash-diff-boom "rhash-diff: planted error in a user function")

(defconst rhash-diff--boom-cmp "rhash-diff-boom-cmp"
  "Comparing a key `equal' to this string signals `rhash-diff-boom'.")

(defun rhash-diff--user-hazard (x)
  "Signal or throw if X is one of the planted hazard keys."
  (cond ((eq x 'rhash-diff-boom) (signal 'rhash-diff-boom (list 'hash x)))
        ((eq x 'rhash-diff-throw) (throw 'rhash-diff--throw 'rhash-diff--thrown))))

(defun rhash-diff--ucmp (a b)
  "The user compare function: `equal', counted.
Signals when A is the string `rhash-diff--boom-cmp'."
  (when rhash-diff--side
    (rhash-diff--count 1)
    (when (eq a b) (rhash-diff--count 2))
    (when (and rhash-diff--opkey (not (eq a rhash-diff--opkey))
               (eq b rhash-diff--opkey))
      (rhash-diff--count 3)))
  (when (and (stringp a) (string= a rhash-diff--boom-cmp))
    (signal 'rhash-diff-boom (list 'compare a b)))
  (equal a b))

(defun rhash-diff--hash-exact (x)
  "A hash that is unique per `equal' class of pool keys, counted."
  (rhash-diff--count 0)
  (rhash-diff--user-hazard x)
  (rhash-diff--class x))

(defun rhash-diff--hash-collide (x)
  "A hash with four values only: a string, a float, a fixnum, a bignum."
  (rhash-diff--count 0)
  (rhash-diff--user-hazard x)
  (pcase (% (rhash-diff--class x) 4)
    (0 "zero")
    (1 1.5)
    (2 2)
    (_ (ash 1 80))))

(define-hash-table-test 'rhash-diff-exact
  #'rhash-diff--ucmp #'rhash-diff--hash-exact)
(define-hash-table-test 'rhash-diff-collide
  #'rhash-diff--ucmp #'rhash-diff--hash-collide)

;;;; The run

(cl-defstruct (rhash-diff--ctx (:constructor rhash-diff--ctx-create)
                               (:copier nil))
  name seed test mode nops (opno 0) op log (logpos 0)
  pool (npool 0) default r h shadows buf (maxcount 0) sub parent
  (stats (make-hash-table :test 'eq)))

(defvar rhash-diff--missing (make-symbol "missing")
  "A private object, never stored: the sentinel of presence tests.")

(defun rhash-diff--str (object)
  "Print OBJECT briefly and safely for a report."
  (let ((print-circle t) (print-gensym t) (print-length 8) (print-level 4)
        (print-escape-newlines t) (print-escape-control-characters t))
    (prin1-to-string object)))

(defun rhash-diff--op-string (op)
  "Describe the logged operation OP, a list (OPNO NAME ARGS...)."
  (concat (format "#%s %s" (car op) (cadr op))
          (mapconcat (lambda (x) (concat " " (rhash-diff--str x))) (cddr op) "")))

(defun rhash-diff--outcome-string (outcome)
  "Describe OUTCOME, (ok . VALUE) or (err . ERROR)."
  (if (eq (car outcome) 'ok)
      (concat "returns " (rhash-diff--str (cdr outcome)))
    (concat "signals " (rhash-diff--str (cdr outcome)))))

(defmacro rhash-diff--with-sub-ops (ctx &rest body)
  "Run BODY, numbering the operations it logs as parts of CTX's current one."
  (declare (indent 1))
  `(progn
     (setf (rhash-diff--ctx-parent ,ctx) (rhash-diff--ctx-op ,ctx)
           (rhash-diff--ctx-sub ,ctx) 0)
     (unwind-protect (progn ,@body)
       (setf (rhash-diff--ctx-parent ,ctx) nil
             (rhash-diff--ctx-sub ,ctx) nil))))

(defun rhash-diff--fail (ctx fmt &rest args)
  "Fail the test with a replayable report about CTX; FMT and ARGS say what."
  (let* ((seed (rhash-diff--ctx-seed ctx))
         (log (rhash-diff--ctx-log ctx))
         (n (length log))
         (pos (rhash-diff--ctx-logpos ctx))
         (lines nil)
         report)
    (dotimes (i n)
      (let ((op (aref log (% (+ pos i) n))))
        (when op (push (concat "    " (rhash-diff--op-string op)) lines))))
    (setq report
          (format "rhash-diff MISMATCH in `%s' (%s table), seed %d, op #%d:
  operation: %s%s
  %s
  last operations (oldest first):
%s
  replay: RHASH_DIFF_SEED=%d make test
      or: RHASH_DIFF_SEED=%d emacs -Q --batch -L lisp -L test -l ert \
-l test/rhash-diff-test.elc --eval '(ert-run-tests-batch-and-exit (quote %s))'"
                  (rhash-diff--ctx-name ctx) (rhash-diff--ctx-test ctx) seed
                  (rhash-diff--ctx-opno ctx)
                  (let ((op (rhash-diff--ctx-op ctx)))
                    (if op (rhash-diff--op-string op) "(none)"))
                  (let ((parent (rhash-diff--ctx-parent ctx)))
                    (if parent
                        (concat "\n     part of: " (rhash-diff--op-string parent))
                      ""))
                  (apply #'format fmt args)
                  (mapconcat #'identity (nreverse lines) "\n")
                  seed seed (rhash-diff--ctx-name ctx)))
    (message "%s" report)
    (ert-fail report)))

(defun rhash-diff--log (ctx &rest op)
  "Record OP, the current operation, in CTX's log."
  (let* ((sub (rhash-diff--ctx-sub ctx))
         (entry (cons (if sub
                          (format "%d.%d" (rhash-diff--ctx-opno ctx)
                                  (setf (rhash-diff--ctx-sub ctx) (1+ sub)))
                        (rhash-diff--ctx-opno ctx))
                      op))
         (log (rhash-diff--ctx-log ctx))
         (pos (rhash-diff--ctx-logpos ctx)))
    (setf (rhash-diff--ctx-op ctx) entry)
    (cl-incf (gethash (car op) (rhash-diff--ctx-stats ctx) 0))
    (aset log pos entry)
    (setf (rhash-diff--ctx-logpos ctx) (% (1+ pos) (length log)))))

(defmacro rhash-diff--try (form)
  "Evaluate FORM; return (ok . VALUE) or (err . ERROR).
A throw from a user function gives (ok . rhash-diff--thrown)."
  `(condition-case err
       (cons 'ok (catch 'rhash-diff--throw ,form))
     (error (cons 'err err))))

(defun rhash-diff--same-data (a b)
  "Non-nil if error data A and B are `equal', even when circular."
  (condition-case nil
      (equal a b)
    (error (equal (rhash-diff--str a) (rhash-diff--str b)))))

(defun rhash-diff--same-outcome (a b)
  "Non-nil if outcomes A and B agree: `eq' values or the same error."
  (if (eq (car a) 'ok)
      (and (eq (car b) 'ok) (eq (cdr a) (cdr b)))
    (and (eq (car b) 'err)
         (eq (cadr a) (cadr b))
         (rhash-diff--same-data (cddr a) (cddr b)))))

(defun rhash-diff--expect-outcome (ctx what ro ho)
  "Fail in CTX unless outcomes RO (rhash) and HO (built-in) of WHAT agree."
  (unless (rhash-diff--same-outcome ro ho)
    (rhash-diff--fail ctx "%s:\n    rhash:    %s\n    built-in: %s" what
                      (rhash-diff--outcome-string ro)
                      (rhash-diff--outcome-string ho))))

;;;; Whole-table comparisons

(defun rhash-diff--h-pairs (h)
  "The entries of built-in H as an alist in `maphash' order."
  (let (l)
    (maphash (lambda (k v) (push (cons k v) l)) h)
    (nreverse l)))

(defun rhash-diff--r-pairs (r)
  "The entries of rhash R as an alist in `rhash-map' order."
  (let (l)
    (rhash-map (lambda (k v) (push (cons k v) l)) r)
    (nreverse l)))

(defun rhash-diff--expect-list (ctx what rl hl &optional pairs)
  "Fail in CTX unless lists RL and HL are `eq' element by element.
With PAIRS, the elements are conses compared by `eq' car and cdr.
WHAT names the comparison."
  (let ((a rl) (b hl) (i 0))
    (while (and a b
                (if pairs
                    (and (eq (caar a) (caar b)) (eq (cdar a) (cdar b)))
                  (eq (car a) (car b))))
      (setq a (cdr a) b (cdr b) i (1+ i)))
    (when (or a b)
      (rhash-diff--fail
       ctx "%s: first difference at element %d (lengths %d vs %d)
    rhash:    %s
    built-in: %s
    rhash list:    %s
    built-in list: %s"
       what i (length rl) (length hl)
       (if a (rhash-diff--str (car a)) "(end)")
       (if b (rhash-diff--str (car b)) "(end)")
       (let ((print-length 30)) (rhash-diff--str rl))
       (let ((print-length 30)) (rhash-diff--str hl))))))

(defun rhash-diff--check-pair (ctx label r h)
  "Compare rhash R and built-in H completely; LABEL says which pair."
  (let* ((hp (rhash-diff--h-pairs h))
         (n (hash-table-count h))
         (rc (rhash-count r))
         (rp (rhash-diff--r-pairs r)))
    (unless (eql rc n)
      (rhash-diff--fail ctx "%s: rhash-count %S, hash-table-count %S" label rc n))
    (rhash-diff--expect-list ctx (concat label ": rhash-map vs maphash") rp hp t)
    (rhash-diff--expect-list ctx (concat label ": rhash-keys vs maphash keys")
                             (rhash-keys r) (mapcar #'car hp))
    (rhash-diff--expect-list ctx (concat label ": rhash-values vs maphash values")
                             (rhash-values r) (mapcar #'cdr hp))
    (rhash-diff--expect-list ctx (concat label ": rhash-to-alist vs maphash")
                             (rhash-to-alist r) hp t)
    (rhash-diff--expect-list ctx (concat label ": rhash-to-plist vs maphash")
                             (rhash-to-plist r)
                             (let (l)
                               (dolist (p hp) (push (car p) l) (push (cdr p) l))
                               (nreverse l)))
    (let ((size (rhash-size r)))
      (unless (and (natnump size) (>= size rc))
        (rhash-diff--fail ctx "%s: rhash-size %S < rhash-count %S" label size rc)))
    (unless (eq (rhash-empty-p r) (zerop n))
      (rhash-diff--fail ctx "%s: rhash-empty-p %S with %d entries"
                        label (rhash-empty-p r) n))
    (unless (eq (rhash-test r) (hash-table-test h))
      (rhash-diff--fail ctx "%s: rhash-test %S, hash-table-test %S"
                        label (rhash-test r) (hash-table-test h)))
    (unless (and (null (rhash-weakness r)) (eq (rhash-p r) t))
      (rhash-diff--fail ctx "%s: rhash-weakness %S, rhash-p %S"
                        label (rhash-weakness r) (rhash-p r)))
    ;; Every stored key is found through the stored key object; in the
    ;; exact user test that never needs the compare function.
    (rhash-diff--count-reset)
    (let ((rhash-diff--side 0))
      (dolist (p hp)
        (let ((v (rhash-get (car p) r rhash-diff--missing)))
          (unless (eq v (cdr p))
            (rhash-diff--fail ctx "%s: (rhash-get %s) of a stored key: %s, expected %s"
                              label (rhash-diff--str (car p))
                              (rhash-diff--str v) (rhash-diff--str (cdr p)))))
        (unless (eq (rhash-contains-p (car p) r) t)
          (rhash-diff--fail ctx "%s: rhash-contains-p of stored key %s is nil"
                            label (rhash-diff--str (car p))))))
    (rhash-diff--check-counts ctx (concat label ": lookups of stored keys")
                              (if (eq (rhash-diff--ctx-mode ctx) 'exact) 'zero 'none))))

(defun rhash-diff--checkpoint (ctx)
  "Compare the main pair and any pending shadow pairs of CTX."
  (rhash-diff--check-pair ctx "tables" (rhash-diff--ctx-r ctx)
                          (rhash-diff--ctx-h ctx))
  (dolist (s (rhash-diff--ctx-shadows ctx))
    (rhash-diff--check-pair ctx (car s) (cadr s) (cddr s)))
  (setf (rhash-diff--ctx-shadows ctx) nil))

(defun rhash-diff--check-count (ctx)
  "Compare the counts of CTX's main pair."
  (let ((rc (rhash-count (rhash-diff--ctx-r ctx)))
        (hc (hash-table-count (rhash-diff--ctx-h ctx))))
    (unless (eql rc hc)
      (rhash-diff--fail ctx "after it: rhash-count %S, hash-table-count %S" rc hc))
    (let ((size (rhash-size (rhash-diff--ctx-r ctx))))
      (unless (and (natnump size) (>= size rc))
        (rhash-diff--fail ctx "after it: rhash-size %S < rhash-count %S" size rc)))))

(defun rhash-diff--check-counts (ctx what how &optional key hit)
  "Check the user-function call counts after WHAT in CTX.
HOW is `exact' (rhash's counts equal the built-in's), `zero' (rhash
made no compare calls), `miss-or-bound' (exact on a miss, bounded by
the colliding entries on a hit; KEY and HIT say which, HIT being
`removed' when the operation removed KEY) or `none' (only
the rules that always hold).  Always: no compare call with `eq'
arguments, and no more reversed-argument calls than the built-in."
  (when (memq (rhash-diff--ctx-mode ctx) '(exact collide))
    (let* ((c rhash-diff--counts)
           (rhash (aref c 0)) (rcmp (aref c 1)) (req (aref c 2)) (rrev (aref c 3))
           (hhash (aref c 4)) (hcmp (aref c 5)) (heq (aref c 6)) (hrev (aref c 7))
           (counts (format "rhash: %d hash, %d compare (%d with eq args, %d \
reversed); built-in: %d hash, %d compare (%d with eq args, %d reversed)"
                           rhash rcmp req rrev hhash hcmp heq hrev)))
      (unless (zerop req)
        (rhash-diff--fail ctx "%s: the user compare function was called with \
an `eq' key\n    %s" what counts))
      (unless (<= rrev hrev)
        (rhash-diff--fail ctx "%s: the user compare function got its arguments \
in the other order (built-in: (funcall CMP KEY STORED-KEY))\n    %s" what counts))
      (pcase how
        ('exact
         (unless (and (= rhash hhash) (= rcmp hcmp))
           (rhash-diff--fail ctx "%s: user function call counts differ\n    %s"
                             what counts)))
        ('zero
         (unless (zerop rcmp)
           (rhash-diff--fail ctx "%s: compare calls where none are needed\n    %s"
                             what counts)))
        ('miss-or-bound
         (unless (= rhash hhash)
           (rhash-diff--fail ctx "%s: user hash call counts differ\n    %s"
                             what counts))
         (if (not hit)
             (unless (= rcmp hcmp)
               (rhash-diff--fail ctx "%s: compare calls on a miss differ \
(each colliding entry once)\n    %s" what counts))
           (when (> rcmp hcmp)
             ;; After a removal the removed key was one of them.
             (let ((bound (+ (rhash-diff--colliding ctx key)
                             (if (eq hit 'removed) 1 0))))
               (unless (<= rcmp bound)
                 (rhash-diff--fail ctx "%s: %d compare calls on a hit, but only \
%d stored keys share its hash\n    %s" what rcmp bound counts))))))))))

(defun rhash-diff--colliding (ctx key)
  "How many keys of CTX's built-in table share KEY's user hash."
  (let ((c (% (rhash-diff--class key) 4)) (n 0))
    (maphash (lambda (k _) (when (= (% (rhash-diff--class k) 4) c) (setq n (1+ n))))
             (rhash-diff--ctx-h ctx))
    n))

;;;; The key pool

(defun rhash-diff--r (s)
  "Read a fresh object from string S."
  (car (read-from-string s)))

(defun rhash-diff--adder (n)
  "A fresh compiled closure adding N."
  (lambda (x) (+ x n)))

(defun rhash-diff--circular ()
  "A fresh list (a b . #1=(c . #1#))."
  (let ((c (list 'c)))
    (setcdr c c)
    (cons 'a (cons 'b c))))

(defun rhash-diff--deep (n)
  "A fresh list nested N deep."
  (let ((l (list 0)))
    (dotimes (_ n) (setq l (list l)))
    l))

(defun rhash-diff--base-pool (buf mode)
  "The awkward keys, with fresh equal copies; markers point into BUF.
MODE is the table test; user tests get no circular lists."
  (let* ((two (lambda (f) (list (funcall f) (funcall f))))
         (eacute (string #xe9))
         (big (number-to-string (1+ most-positive-fixnum)))
         (nbig (number-to-string (1- most-negative-fixnum)))
         (e70 (number-to-string (expt 2 70)))
         (m1 (with-current-buffer buf (copy-marker 3)))
         (m2 (with-current-buffer buf (copy-marker 3)))
         (m3 (with-current-buffer buf (copy-marker 7))))
    (append
     ;; Fixnums.
     (list 0 -1 1 42 ?a most-positive-fixnum most-negative-fixnum 1000000)
     ;; Bignums, each twice as distinct objects.
     (funcall two (lambda () (rhash-diff--r big)))
     (funcall two (lambda () (rhash-diff--r nbig)))
     (funcall two (lambda () (rhash-diff--r e70)))
     (funcall two (lambda () (rhash-diff--r (concat "-" e70))))
     ;; Floats: signed zeros, several 1.0, NaNs with signs and payloads.
     (funcall two (lambda () (rhash-diff--r "0.0")))
     (funcall two (lambda () (rhash-diff--r "-0.0")))
     (funcall two (lambda () (rhash-diff--r "1.0")))
     (list (rhash-diff--r "1.0") (rhash-diff--r "1.5") (rhash-diff--r "1e300"))
     (funcall two (lambda () (rhash-diff--r "0.0e+NaN")))
     (funcall two (lambda () (rhash-diff--r "-0.0e+NaN")))
     (list (rhash-diff--r "1.0e+NaN") (rhash-diff--r "-1.0e+NaN"))
     (funcall two (lambda () (/ (rhash-diff--r "0.0") (rhash-diff--r "0.0"))))
     (funcall two (lambda () (rhash-diff--r "1.0e+INF")))
     (list (rhash-diff--r "-1.0e+INF"))
     ;; Strings.
     (funcall two (lambda () (copy-sequence "abc")))
     (list (propertize (copy-sequence "abc") 'face 'bold)
           (string-to-multibyte (copy-sequence "abc"))
           "" (make-string 0 ?a)
           (copy-sequence "\377") (string-to-multibyte (copy-sequence "\377"))
           (copy-sequence "\303\251") eacute (copy-sequence eacute)
           (encode-coding-string eacute 'utf-8)
           (propertize (copy-sequence eacute) 'face 'italic)
           (string #x65e5 #x672c #x8a9e) (string #x65e5 #x672c #x8a9e)
           (copy-sequence "a\0b") (copy-sequence "a\0b") (copy-sequence "\0")
           (copy-sequence "a\0c")
           ;; A raw byte and a non-Unicode character in multibyte strings.
           (string ?a #x3fffe9) (string ?a #x3fffe9) (string ?a #xe9)
           (string #x110000) (string #x110000)
           ;; Differ only in the last of 100 characters: sxhash collides.
           (concat (make-string 99 ?x) "a") (concat (make-string 99 ?x) "a")
           (concat (make-string 99 ?x) "b"))
     (let (l)
       (dolist (n '(1 12 123 124 100 101))
         (let ((s (format "my-package--internal-function-%d" n)))
           (push s l)
           (push (copy-sequence s) l)))
       (nreverse l))
     ;; Symbols.
     (list 'foo nil t :kw 'bar (make-symbol "foo") (make-symbol "foo")
           (intern "rhash-diff-interned") 'car)
     ;; Conses and lists.
     (funcall two (lambda () (list 1 2 (list 3 4))))
     (funcall two (lambda () (cons 1 2)))
     (list (cons 1 (rhash-diff--r "2.0"))
           (list (rhash-diff--r "0.0")) (list (rhash-diff--r "-0.0")))
     (funcall two (lambda () (list (copy-sequence "abc") 'foo (rhash-diff--r "1.5"))))
     (funcall two (lambda () (list (list (list (list (list 1)))))))
     (list (list (list (list (list (list 2))))))
     (funcall two (lambda () (number-sequence 1 20)))
     (list (number-sequence 1 21))
     ;; Vectors, records, bool-vectors, a char-table.
     (funcall two (lambda () (vector 1 2 3)))
     (list (vector) (vector 1 2 3 4 5 6 7 8) (vector 1 2 3 4 5 6 7 9))
     (funcall two (lambda () (vector (copy-sequence "abc") (list 1 2))))
     (funcall two (lambda () (record 'foo 1 2)))
     (list (record 'foo 1 3))
     (funcall two (lambda () (make-bool-vector 10 t)))
     (list (bool-vector t nil t) (make-bool-vector 0 nil))
     (funcall two (lambda () (make-char-table 'rhash-diff)))
     ;; Markers: two at the same place, one elsewhere, two nowhere.
     (list m1 m2 m3 (make-marker) (make-marker))
     ;; Overlays: two alike, one elsewhere.
     (with-current-buffer buf
       (list (make-overlay 1 5) (make-overlay 1 5) (make-overlay 2 5)))
     ;; A buffer.
     (list buf)
     ;; Functions: interpreted and compiled closures, a subr.
     (funcall two (lambda () (eval '(lambda (x) x) t)))
     (funcall two (lambda () (rhash-diff--adder 1)))
     (list (rhash-diff--adder 2) (symbol-function 'car))
     ;; Circular lists: the identical object and a structural twin.
     (unless (memq mode '(exact collide))
       (funcall two #'rhash-diff--circular))
     ;; Nested deeper than `equal' can go: comparing twins signals.
     (unless (memq mode '(exact collide))
       (funcall two (lambda () (rhash-diff--deep 250))))
     ;; User tests: keys whose hash signals or throws, and (where the
     ;; compare calls are deterministic) keys whose comparison signals.
     (when (memq mode '(exact collide))
       (list 'rhash-diff-boom 'rhash-diff-throw))
     (when (eq mode 'exact)
       (funcall two (lambda () (copy-sequence rhash-diff--boom-cmp)))))))

(defun rhash-diff--register (key)
  "Give KEY an `equal' class number unless its class has one."
  (unless (gethash key rhash-diff--registry)
    (puthash key (hash-table-count rhash-diff--registry) rhash-diff--registry)))

(defun rhash-diff--add-to-pool (ctx keys)
  "Add KEYS to CTX's pool while there is room."
  (let ((pool (rhash-diff--ctx-pool ctx)))
    (dolist (k keys)
      (let ((n (rhash-diff--ctx-npool ctx)))
        (when (< n (length pool))
          (aset pool n k)
          (setf (rhash-diff--ctx-npool ctx) (1+ n))
          (when (memq (rhash-diff--ctx-mode ctx) '(exact collide))
            (rhash-diff--register k)))))))

(defun rhash-diff--fresh-keys (n)
  "One or two new keys (equal twins) made from integer N."
  (pcase (rhash-diff--rand 6)
    (0 (let ((s (format "my-package--internal-function-%d" n)))
         (list s (copy-sequence s))))
    (1 (list (list 'k n) (list 'k n)))
    (2 (list (+ 0.25 n) (+ 0.25 n)))
    (3 (list (+ (ash 1 64) n) (+ (ash 1 64) n)))
    (4 (list (* 7919 n)))
    (_ (list (vector n (number-to-string n)) (vector n (number-to-string n))))))

(defsubst rhash-diff--key (ctx)
  "A random key from CTX's pool."
  (aref (rhash-diff--ctx-pool ctx) (rhash-diff--rand (rhash-diff--ctx-npool ctx))))

(defun rhash-diff--value (ctx)
  "A random value: a pool object, nil, the default object or a fresh one."
  (pcase (rhash-diff--rand 10)
    ((or 0 1 2) (rhash-diff--key ctx))
    ((or 3 4) nil)
    (5 (rhash-diff--ctx-default ctx))
    (6 (+ 0.5 (rhash-diff--rand 1000)))
    (7 (+ (ash 1 70) (rhash-diff--rand 1000)))
    (_ (list 'v (rhash-diff--ctx-opno ctx)))))

(defun rhash-diff--default (ctx)
  "A DEFAULT argument for a lookup."
  (pcase (rhash-diff--rand 4)
    ((or 0 1) (rhash-diff--ctx-default ctx))
    (2 nil)
    (_ (rhash-diff--value ctx))))

;;;; Operations

(defun rhash-diff--apply (op rside tbl key val)
  "Do basic operation OP with KEY and VAL on TBL (rhash if RSIDE).
Return (ok . VALUE) or (err . ERROR)."
  (condition-case err
      (cons 'ok
            (catch 'rhash-diff--throw
              (if rside
                (pcase op
                  ('put (rhash-put key val tbl))
                  ('get (rhash-get key tbl))
                  ('getd (rhash-get key tbl val))
                  ('remove (rhash-remove key tbl))
                  ('contains (rhash-contains-p key tbl)))
              (pcase op
                ('put (puthash key val tbl))
                ('get (gethash key tbl))
                ('getd (gethash key tbl val))
                ('remove (remhash key tbl))
                ('contains (not (eq (gethash key tbl rhash-diff--missing)
                                    rhash-diff--missing)))))))
    (error (cons 'err err))))

(defun rhash-diff--basic (ctx op key val)
  "Run basic operation OP with KEY and VAL on both tables of CTX."
  (let* ((mode (rhash-diff--ctx-mode ctx))
         (r (rhash-diff--ctx-r ctx))
         (h (rhash-diff--ctx-h ctx))
         (hit (and (eq mode 'collide)
                   (eq (cdr (rhash-diff--apply 'contains nil h key nil)) t)))
         ro ho)
    (rhash-diff--log ctx op key val)
    (rhash-diff--count-reset)
    (let ((rhash-diff--opkey key))
      (setq ro (let ((rhash-diff--side 0)) (rhash-diff--apply op t r key val)))
      (setq ho (let ((rhash-diff--side 1)) (rhash-diff--apply op nil h key val))))
    (rhash-diff--expect-outcome ctx "results differ" ro ho)
    (when (or (eq (car ho) 'err) (eq (cdr ho) 'rhash-diff--thrown))
      (cl-incf (gethash (intern (if (eq (car ho) 'err)
                                    (format "(%s signals %s)" op (cadr ho))
                                  (format "(%s throws)" op)))
                        (rhash-diff--ctx-stats ctx) 0)))
    (rhash-diff--check-count ctx)
    (pcase mode
      ('exact (rhash-diff--check-counts ctx "the operation" 'exact))
      ('collide (rhash-diff--check-counts ctx "the operation" 'miss-or-bound
                                          key (if (and hit (eq op 'remove))
                                                  'removed
                                                hit))))))

(defun rhash-diff--put* (rside k v tbl)
  "Put K V into TBL, an rhash table if RSIDE."
  (if rside (rhash-put k v tbl) (puthash k v tbl)))

(defun rhash-diff--remove* (rside k tbl)
  "Remove K from TBL, an rhash table if RSIDE."
  (if rside (rhash-remove k tbl) (remhash k tbl)))

(defun rhash-diff--clear* (rside tbl)
  "Clear TBL, an rhash table if RSIDE."
  (if rside (rhash-clear tbl) (clrhash tbl)))

(defconst rhash-diff--walk-kinds
  [plain set remove-alt add chaos clear throw]
  "The kinds of walk: what the function does to the table it walks.")

(defun rhash-diff--walk-script (ctx kind n)
  "A script for a walk of KIND over a table of N entries: a vector
whose I-th element says what the I-th call does."
  (pcase kind
    ('set (let ((v (make-vector (1+ n) nil)))
            (dotimes (i (1+ n)) (aset v i (list 'set i)))
            v))
    ('add (let ((v (make-vector (+ n 8) nil)))
            (dotimes (i (length v))
              (when (zerop (rhash-diff--rand 3))
                (aset v i (cons (rhash-diff--key ctx) (rhash-diff--value ctx)))))
            v))
    ('chaos (let ((v (make-vector (+ n 8) nil)))
              (dotimes (i (length v))
                (aset v i (pcase (rhash-diff--rand 7)
                            (0 (list 'put (rhash-diff--key ctx) (rhash-diff--value ctx)))
                            (1 (list 'put (rhash-diff--key ctx) (rhash-diff--value ctx)))
                            (2 (list 'remove (rhash-diff--key ctx)))
                            (3 (list 'remove-current))
                            (4 (list 'set-current (rhash-diff--value ctx)))
                            (_ nil))))
              v))
    ('clear (let ((v (make-vector (max 1 n) nil)))
              (aset v (rhash-diff--rand (max 1 n))
                    (if (zerop (rhash-diff--rand 3))
                        ;; Clear, then add a few keys from the same call.
                        (let (adds)
                          (dotimes (_ (1+ (rhash-diff--rand 3)))
                            (push (cons (rhash-diff--key ctx) (rhash-diff--value ctx))
                                  adds))
                          adds)
                      t))
              v))
    ('throw (let ((v (make-vector (max 1 n) nil)))
              (aset v (rhash-diff--rand (max 1 n)) t)
              v))
    (_ [])))

(defun rhash-diff--walk (rside tbl kind script)
  "Walk TBL (rhash if RSIDE) with a function doing KIND by SCRIPT.
Return (OUTCOME . VISITS), VISITS the (KEY . VALUE) of each call."
  (let* ((i 0) (visits nil) (n (length script))
         (fn (lambda (k v)
               (push (cons k v) visits)
               (let ((act (and (< i n) (aref script i)))
                     (odd (= (% i 2) 1)))
                 (setq i (1+ i))
                 (pcase kind
                   ('set (when act (rhash-diff--put* rside k act tbl)))
                   ('remove-alt (when odd (rhash-diff--remove* rside k tbl)))
                   ('add (when act (rhash-diff--put* rside (car act) (cdr act) tbl)))
                   ('chaos
                    (pcase (car act)
                      ('put (rhash-diff--put* rside (nth 1 act) (nth 2 act) tbl))
                      ('remove (rhash-diff--remove* rside (nth 1 act) tbl))
                      ('remove-current (rhash-diff--remove* rside k tbl))
                      ('set-current (rhash-diff--put* rside k (nth 1 act) tbl))))
                   ('clear
                    (when act
                      (rhash-diff--clear* rside tbl)
                      (when (consp act)
                        (dolist (p act) (rhash-diff--put* rside (car p) (cdr p) tbl)))))
                   ('throw (when act (throw 'rhash-diff--stop 'thrown)))))))
         (outcome (rhash-diff--try
                   (catch 'rhash-diff--stop
                     (if rside (rhash-map fn tbl) (maphash fn tbl))))))
    (cons outcome (nreverse visits))))

(defun rhash-diff--op-walk (ctx)
  "Walk both tables of CTX with the same mutating function."
  (let* ((kind (aref rhash-diff--walk-kinds
                     (rhash-diff--rand (length rhash-diff--walk-kinds))))
         (h (rhash-diff--ctx-h ctx))
         (r (rhash-diff--ctx-r ctx))
         (script (rhash-diff--walk-script ctx kind (hash-table-count h)))
         rw hw)
    (rhash-diff--log ctx 'walk kind script)
    (rhash-diff--count-reset)
    (setq rw (let ((rhash-diff--side 0)) (rhash-diff--walk t r kind script)))
    (setq hw (let ((rhash-diff--side 1)) (rhash-diff--walk nil h kind script)))
    (rhash-diff--expect-outcome ctx "rhash-map vs maphash results differ"
                                (car rw) (car hw))
    (when (eq (car (car hw)) 'err)
      (cl-incf (gethash (intern (format "(walk signals %s)" (cadr (car hw))))
                        (rhash-diff--ctx-stats ctx) 0)))
    (rhash-diff--expect-list ctx "(key . value) of each call of the walked function"
                             (cdr rw) (cdr hw) t)
    (rhash-diff--check-counts ctx "the walk"
                              (if (eq (rhash-diff--ctx-mode ctx) 'exact) 'exact 'none))
    (rhash-diff--check-pair ctx "after the walk" r h)))

(defun rhash-diff--make-args (ctx)
  "Random `make-hash-table' arguments for CTX's test."
  (let ((test (rhash-diff--ctx-test ctx))
        (args nil))
    (pcase (rhash-diff--rand 6)
      (0 (setq args (list :size 0)))
      (1 (setq args (list :size 1)))
      (2 (setq args (list :size 7 :rehash-size 2.0 :rehash-threshold 0.9)))
      (3 (setq args (list :size 1000 :weakness nil))))
    (if (and (eq test 'eql) (zerop (rhash-diff--rand 2)))
        args
      (append (list :test test) args))))

(defun rhash-diff--rebuild (test pairs &optional args)
  "A fresh built-in table of TEST (made with ARGS) with PAIRS put in order."
  (let ((h (apply #'make-hash-table :test test args)))
    (dolist (p pairs) (puthash (car p) (cdr p) h))
    h))

(defun rhash-diff--shuffle (list)
  "LIST in a random order."
  (let ((v (vconcat list)))
    (cl-loop for i from (1- (length v)) downto 1
             do (let* ((j (rhash-diff--rand (1+ i))) (x (aref v i)))
                  (aset v i (aref v j))
                  (aset v j x)))
    (append v nil)))

(defun rhash-diff--random-alist (ctx)
  "An alist for the conversions: CTX's entries, in order or mixed with
random pairs and duplicates."
  (let ((hp (rhash-diff--h-pairs (rhash-diff--ctx-h ctx))))
    (if (zerop (rhash-diff--rand 2))
        hp
      (let ((l (cl-remove-if (lambda (_) (zerop (rhash-diff--rand 8))) hp)))
        (dotimes (_ (rhash-diff--rand 12))
          (push (cons (rhash-diff--key ctx) (rhash-diff--value ctx)) l))
        (rhash-diff--shuffle l)))))

(defun rhash-diff--swap-in (ctx label r h)
  "Continue CTX with the pair R H; keep the old pair for a later check.
LABEL names the old pair in reports."
  (push (cons label (cons (rhash-diff--ctx-r ctx) (rhash-diff--ctx-h ctx)))
        (rhash-diff--ctx-shadows ctx))
  (setf (rhash-diff--ctx-r ctx) r
        (rhash-diff--ctx-h ctx) h))

(defun rhash-diff--op-copy (ctx)
  "Copy both tables; continue with the copies or keep them aside."
  (let* ((r (rhash-diff--ctx-r ctx)) (h (rhash-diff--ctx-h ctx))
         (swap (zerop (rhash-diff--rand 2)))
         r2 h2)
    (rhash-diff--log ctx 'copy (if swap 'continue-on-copies 'keep-originals))
    (rhash-diff--count-reset)
    (let ((ro (let ((rhash-diff--side 0)) (rhash-diff--try (rhash-copy r))))
          (ho (let ((rhash-diff--side 1)) (rhash-diff--try (copy-hash-table h)))))
      (unless (and (eq (car ro) 'ok) (eq (car ho) 'ok))
        (rhash-diff--fail ctx "copy:\n    rhash:    %s\n    built-in: %s"
                          (rhash-diff--outcome-string ro)
                          (rhash-diff--outcome-string ho)))
      (setq r2 (cdr ro) h2 (cdr ho)))
    (rhash-diff--check-counts ctx "rhash-copy vs copy-hash-table"
                              (if (eq (rhash-diff--ctx-mode ctx) 'exact) 'exact 'none))
    (rhash-diff--check-pair ctx "the copies" r2 h2)
    (if swap
        (rhash-diff--swap-in ctx "the originals, after continuing on the copies" r2 h2)
      (push (cons "the copies, after continuing on the originals" (cons r2 h2))
            (rhash-diff--ctx-shadows ctx)))))

(defun rhash-diff--op-to-hash-table (ctx)
  "Compare `rhash-to-hash-table' of the rhash table with the built-in."
  (let* ((r (rhash-diff--ctx-r ctx)) (h (rhash-diff--ctx-h ctx))
         (o (progn (rhash-diff--log ctx 'rhash-to-hash-table)
                   (rhash-diff--try (rhash-to-hash-table r)))))
    (unless (and (eq (car o) 'ok) (hash-table-p (cdr o)))
      (rhash-diff--fail ctx "rhash-to-hash-table: %s" (rhash-diff--outcome-string o)))
    (let ((h3 (cdr o)))
      (unless (and (eq (hash-table-test h3) (hash-table-test h))
                   (null (hash-table-weakness h3)))
        (rhash-diff--fail ctx "rhash-to-hash-table: test %S weakness %S, expected %S nil"
                          (hash-table-test h3) (hash-table-weakness h3)
                          (hash-table-test h)))
      (rhash-diff--expect-list ctx "maphash of rhash-to-hash-table vs the built-in"
                               (rhash-diff--h-pairs h3) (rhash-diff--h-pairs h) t))))

(defun rhash-diff--op-from-hash-table (ctx)
  "`rhash-from-hash-table' of the built-in iterates in its order."
  (let* ((h (rhash-diff--ctx-h ctx))
         (o (progn (rhash-diff--log ctx 'rhash-from-hash-table)
                   (rhash-diff--try (rhash-from-hash-table h)))))
    (unless (and (eq (car o) 'ok) (rhash-p (cdr o)))
      (rhash-diff--fail ctx "rhash-from-hash-table: %s" (rhash-diff--outcome-string o)))
    ;; It cannot see the built-in's free places, so its twin is a
    ;; fresh built-in table filled in the same order.
    (let ((h4 (rhash-diff--rebuild (hash-table-test h) (rhash-diff--h-pairs h))))
      (rhash-diff--check-pair ctx "rhash-from-hash-table vs the built-in" (cdr o) h4)
      (when (zerop (rhash-diff--rand 2))
        (rhash-diff--swap-in ctx "the tables before rhash-from-hash-table"
                             (cdr o) h4)))))

(defun rhash-diff--without-test (args)
  "The keyword ARGS without :test and its value."
  (let (l)
    (while args
      (unless (eq (car args) :test)
        (push (car args) l)
        (push (cadr args) l))
      (setq args (cddr args)))
    (nreverse l)))

(defun rhash-diff--op-from-list (ctx plist)
  "`rhash-from-alist' (or with PLIST, `rhash-from-plist') vs repeated `puthash'.
The list is the table's own `rhash-to-alist' or `rhash-to-plist' (a
round trip) or a random list with duplicates."
  (let* ((test (rhash-diff--ctx-test ctx))
         (round-trip (zerop (rhash-diff--rand 2)))
         (alist (if round-trip
                    (rhash-diff--h-pairs (rhash-diff--ctx-h ctx))
                  (rhash-diff--random-alist ctx)))
         (list (cond ((not round-trip)
                      (if plist
                          (let (l)
                            (dolist (p alist) (push (car p) l) (push (cdr p) l))
                            (nreverse l))
                        alist))
                     (plist (rhash-to-plist (rhash-diff--ctx-r ctx)))
                     (t (rhash-to-alist (rhash-diff--ctx-r ctx)))))
         (args (rhash-diff--make-args ctx))
         (name (if plist "rhash-from-plist" "rhash-from-alist"))
         ro ho)
    (rhash-diff--log ctx (intern name) list args)
    (rhash-diff--count-reset)
    (setq ro (let ((rhash-diff--side 0))
               (rhash-diff--try (if plist
                                    (apply #'rhash-from-plist list args)
                                  (apply #'rhash-from-alist list args)))))
    (setq ho (let ((rhash-diff--side 1))
               (rhash-diff--try (rhash-diff--rebuild
                                 test alist (rhash-diff--without-test args)))))
    (if (not (and (eq (car ro) 'ok) (rhash-p (cdr ro))
                  (eq (car ho) 'ok) (hash-table-p (cdr ho))))
        (rhash-diff--expect-outcome ctx (concat name " vs puthash of each pair")
                                    ro ho)
      (rhash-diff--check-counts ctx (concat name " vs puthash of each pair")
                                (if (eq (rhash-diff--ctx-mode ctx) 'exact) 'exact 'none))
      (rhash-diff--check-pair ctx (concat name " vs puthash of each pair")
                              (cdr ro) (cdr ho))
      (when (zerop (rhash-diff--rand 2))
        (rhash-diff--swap-in ctx (concat "the tables before " name)
                             (cdr ro) (cdr ho))))))

(defun rhash-diff--op-clear (ctx)
  "Clear both tables."
  (let ((r (rhash-diff--ctx-r ctx)) (h (rhash-diff--ctx-h ctx)))
    (rhash-diff--log ctx 'clear)
    (let ((ro (rhash-diff--try (eq (rhash-clear r) r)))
          (ho (rhash-diff--try (eq (clrhash h) h))))
      (rhash-diff--expect-outcome ctx "(eq (clear TABLE) TABLE)" ro ho))
    (rhash-diff--check-count ctx)))

(defun rhash-diff--op-drain (ctx)
  "Remove every key in random order, then maybe clear the empty tables."
  (let ((keys (rhash-diff--shuffle
               (mapcar #'car (rhash-diff--h-pairs (rhash-diff--ctx-h ctx)))))
        (clear (zerop (rhash-diff--rand 2))))
    (rhash-diff--log ctx 'drain (length keys) (if clear 'then-clear 'no-clear))
    (rhash-diff--with-sub-ops ctx
      (dolist (k keys)
        (rhash-diff--basic ctx 'remove k nil))
      (when clear (rhash-diff--op-clear ctx)))))

(defun rhash-diff--op-burst (ctx)
  "Put many new keys, then remove or look up each: large tables."
  (let* ((n (+ 200 (rhash-diff--rand 2800)))
         (kind (rhash-diff--rand 3))
         (opno (rhash-diff--ctx-opno ctx))
         (keys nil))
    (rhash-diff--log ctx 'burst n)
    (rhash-diff--with-sub-ops ctx
      (dotimes (i n)
        (let ((k (pcase kind
                   (0 (+ (* 1000000 opno) i))
                   (1 (format "burst-%d-%d" opno i))
                   (_ (+ 0.5 (* 10000 opno) i)))))
          (rhash-diff--register k)
          (push k keys)
          (rhash-diff--basic ctx 'put k (if (zerop (% i 3)) nil i))))
      (dolist (k (rhash-diff--shuffle keys))
        (pcase (rhash-diff--rand 4)
          ((or 0 1) (rhash-diff--basic ctx 'remove k nil))
          (2 (rhash-diff--basic ctx 'getd k (rhash-diff--ctx-default ctx)))
          (_ (rhash-diff--basic ctx 'contains k nil)))))))

(defun rhash-diff--op-gc (ctx)
  "Collect garbage, then compare the tables."
  (rhash-diff--log ctx 'garbage-collect)
  (garbage-collect)
  (rhash-diff--checkpoint ctx))

(defun rhash-diff--op-new-key (ctx)
  "Add fresh keys to the pool and put the first."
  (let ((keys (rhash-diff--fresh-keys (rhash-diff--ctx-opno ctx)))
        (n (rhash-diff--ctx-npool ctx)))
    (rhash-diff--add-to-pool ctx keys)
    (if (> (rhash-diff--ctx-npool ctx) n)
        (rhash-diff--basic ctx 'put (car keys) (rhash-diff--value ctx))
      (rhash-diff--basic ctx 'put (rhash-diff--key ctx) (rhash-diff--value ctx)))))

(defun rhash-diff--step (ctx)
  "Do one random operation on CTX's tables."
  (let* ((grow (zerop (% (/ (rhash-diff--ctx-opno ctx) 2000) 2)))
         (w (rhash-diff--rand 100000))
         (put (if grow 38000 18000))
         (rem (+ put (if grow 10000 30000))))
    (cond
     ((< w put) (rhash-diff--basic ctx 'put (rhash-diff--key ctx)
                                   (rhash-diff--value ctx)))
     ((< w rem) (rhash-diff--basic ctx 'remove (rhash-diff--key ctx) nil))
     ((< w (+ rem 16000)) (rhash-diff--basic ctx 'get (rhash-diff--key ctx) nil))
     ((< w (+ rem 32000)) (rhash-diff--basic ctx 'getd (rhash-diff--key ctx)
                                             (rhash-diff--default ctx)))
     ((< w (+ rem 44000)) (rhash-diff--basic ctx 'contains (rhash-diff--key ctx) nil))
     ((< w (+ rem 48000)) (rhash-diff--op-new-key ctx))
     (t
      (let ((w (- w (+ rem 48000))))
        (cond
         ((< w 700) (rhash-diff--op-walk ctx))
         ((< w 1000) (rhash-diff--op-copy ctx))
         ((< w 1200) (rhash-diff--op-to-hash-table ctx))
         ((< w 1400) (rhash-diff--op-from-hash-table ctx))
         ((< w 1600) (rhash-diff--op-from-list ctx nil))
         ((< w 1800) (rhash-diff--op-from-list ctx t))
         ((< w 1820) (rhash-diff--op-clear ctx))
         ((< w 1830) (rhash-diff--op-drain ctx))
         ((< w 1840) (rhash-diff--op-gc ctx))
         ((< w 1848) (if (eq (rhash-diff--ctx-mode ctx) 'collide)
                         (rhash-diff--op-drain ctx)
                       (rhash-diff--op-burst ctx)))
         (t (rhash-diff--basic ctx 'getd (rhash-diff--key ctx)
                               (rhash-diff--default ctx)))))))))

(defun rhash-diff--run (name test mode default-seed &optional pool-max)
  "Run the differential test NAME on tables of TEST.
MODE is TEST for the built-in tests, or `exact' / `collide' for the
user tests.  DEFAULT-SEED is used unless RHASH_DIFF_SEED is set.
POOL-MAX bounds the number of distinct key objects (default 1200)."
  (let* ((seed (rhash-diff--seed default-seed))
         (nops (rhash-diff--ops))
         (buf (generate-new-buffer " *rhash-diff*"))
         (rhash-diff--registry (make-hash-table :test 'equal))
         (rhash-diff--counts (make-vector 8 0))
         (rhash-diff--side nil)
         (rhash-diff--opkey nil)
         (start (float-time)))
    (unwind-protect
        (let ((ctx (rhash-diff--ctx-create
                    :name name :seed seed :test test :mode mode :nops nops
                    :log (make-vector rhash-diff--log-size nil)
                    :pool (make-vector (or pool-max 1200) nil)
                    :default (list 'rhash-diff-default)
                    :buf buf)))
          (with-current-buffer buf (insert "hello, world\n"))
          (rhash-diff--set-seed seed)
          (rhash-diff--add-to-pool ctx (rhash-diff--base-pool buf mode))
          (let ((args (rhash-diff--make-args ctx)))
            (setf (rhash-diff--ctx-r ctx) (apply #'rhash-make args)
                  (rhash-diff--ctx-h ctx) (apply #'make-hash-table args)))
          (while (< (rhash-diff--ctx-opno ctx) nops)
            (condition-case err
                (rhash-diff--step ctx)
              (ert-test-failed (signal (car err) (cdr err)))
              (error (rhash-diff--fail ctx "unexpected error in the harness: %s"
                                       (rhash-diff--str err))))
            (let ((n (1+ (rhash-diff--ctx-opno ctx)))
                  (c (hash-table-count (rhash-diff--ctx-h ctx))))
              (setf (rhash-diff--ctx-opno ctx) n)
              (when (> c (rhash-diff--ctx-maxcount ctx))
                (setf (rhash-diff--ctx-maxcount ctx) c))
              (when (zerop (% n rhash-diff--check-every))
                (setf (rhash-diff--ctx-op ctx) (list n 'checkpoint))
                (rhash-diff--checkpoint ctx))))
          (setf (rhash-diff--ctx-op ctx) (list nops 'final-checkpoint))
          (rhash-diff--checkpoint ctx)
          (message "rhash-diff %s: %d ops, seed %d, %d keys in the pool, \
%d entries at the end (at most %d), %.1fs\n  %s"
                   name nops seed (rhash-diff--ctx-npool ctx)
                   (hash-table-count (rhash-diff--ctx-h ctx))
                   (rhash-diff--ctx-maxcount ctx)
                   (- (float-time) start)
                   (let (l)
                     (maphash (lambda (k v) (push (format "%s %d" k v) l))
                              (rhash-diff--ctx-stats ctx))
                     (mapconcat #'identity (nreverse l) ", "))))
      (kill-buffer buf))))

;;;; The tests

(declare-function rhash-module-info "rhash-module" ())

(ert-deftest rhash-diff-access-path ()
  "The differential run is on the path it claims (see rhash-path-test.el).
A self-test that failed silently would otherwise test the official
path twice."
  (should (eq (plist-get (rhash-module-info) :module)
              (not (equal (getenv "RHASH_NO_MODULE") "1"))))
  (should (eq (plist-get (rhash-module-info) :direct)
              (not (or (equal (getenv "RHASH_NO_DIRECT") "1")
                       (equal (getenv "RHASH_NO_MODULE") "1")
                       (equal (getenv "RHASH_EXPECT_DIRECT") "0"))))))

(ert-deftest rhash-diff-eq ()
  "rhash vs built-in `eq' tables on a random operation sequence."
  (rhash-diff--run 'rhash-diff-eq 'eq 'eq 28001))

(ert-deftest rhash-diff-eql ()
  "rhash vs built-in `eql' tables on a random operation sequence."
  (rhash-diff--run 'rhash-diff-eql 'eql 'eql 28002))

(ert-deftest rhash-diff-equal ()
  "rhash vs built-in `equal' tables on a random operation sequence."
  (rhash-diff--run 'rhash-diff-equal 'equal 'equal 28003))

(ert-deftest rhash-diff-user-collide ()
  "A user test whose hash has four values (string, float, fixnum, bignum).
Besides the results: the compare function is never called with an
`eq' key, on a miss it is called once per colliding entry as by the
built-in, and the hash function as often as by the built-in."
  (rhash-diff--run 'rhash-diff-user-collide 'rhash-diff-collide 'collide 28004 200))

(ert-deftest rhash-diff-user-compare-count ()
  "A user test whose hash is unique per `equal' class: the compare
function runs exactly as often as with the built-in (once for a
non-`eq' equal key, never for an `eq' key), and so does the hash."
  (rhash-diff--run 'rhash-diff-user-compare-count 'rhash-diff-exact 'exact 28005))

(provide 'rhash-diff-test)
;;; rhash-diff-test.el ends here
