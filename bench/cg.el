;;; cg.el --- Loops for callgrind instruction counts (bench/callgrind.sh)  -*- lexical-binding: t; -*-

;;; Commentary:

;; `cg-run's OP times N iterations of one operation on 1000-entry tables;
;; `cg-bulk' and `cg-map' likewise for bulk calls and walks.  bench/callgrind.sh
;; runs each with N = 0 and N = 100000 under callgrind and prints the
;; difference per operation.

;;; Code:
(require 'rhash)
(defvar cg--nop (getenv "RHASH_BENCH_NOP_MODULE"))
(when cg--nop (module-load cg--nop))
(declare-function bench-nop2 nil)
(declare-function bench-nop3 nil)
(declare-function bench-nop-walk nil)
(defun cg-run (op n)
  "Run operation OP N times on 1000-entry tables; see bench/callgrind.sh."
  (let* ((size 1000)
         (keys (vconcat (number-sequence 0 (1- size))))
         (syms (vconcat (mapcar (lambda (i) (intern (format "cg-sym-%d" i))) (number-sequence 0 (1- size)))))
         (strs (vconcat (mapcar (lambda (i) (format "k%08d" i)) (number-sequence 0 (1- size)))))
         (strc (vconcat (mapcar #'copy-sequence strs)))
         (lng (vconcat (mapcar (lambda (i) (format "my-package--internal-function-%d" i)) (number-sequence 0 (1- size)))))
         (lngc (vconcat (mapcar #'copy-sequence lng)))
         (hl (make-hash-table :test 'equal)) (rl (rhash-make :test 'equal))
         (h (make-hash-table :test 'eql)) (r (rhash-make :test 'eql))
         (hs (make-hash-table :test 'eq)) (rs (rhash-make :test 'eq))
         (ht (make-hash-table :test 'equal)) (rt (rhash-make :test 'equal))
         (i 0) (j 0) (x nil))
    (dotimes (k size) (puthash k k h) (rhash-put k k r)
             (puthash (aref syms k) k hs) (rhash-put (aref syms k) k rs)
             (puthash (aref strs k) k ht) (rhash-put (aref strs k) k rt)
             (puthash (aref lng k) k hl) (rhash-put (aref lng k) k rl))
    (garbage-collect)
    (setq gc-cons-threshold most-positive-fixnum)
    (pcase op
      ('gethash (while (< i n) (setq x (gethash (aref keys j) h)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('rget (while (< i n) (setq x (rhash-get (aref keys j) r)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('gethash-sym (while (< i n) (setq x (gethash (aref syms j) hs)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('rget-sym (while (< i n) (setq x (rhash-get (aref syms j) rs)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('gethash-str (while (< i n) (setq x (gethash (aref strc j) ht)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('rget-str (while (< i n) (setq x (rhash-get (aref strc j) rt)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('gethash-long (while (< i n) (setq x (gethash (aref lngc j) hl)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('rget-long (while (< i n) (setq x (rhash-get (aref lngc j) rl)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('puthash (while (< i n) (puthash (aref keys j) i h) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('rput (while (< i n) (rhash-put (aref keys j) i r) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('remput (while (< i n) (remhash (aref keys j) h) (puthash (aref keys j) i h) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('rremput (while (< i n) (rhash-remove (aref keys j) r) (rhash-put (aref keys j) i r) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('nop2 (while (< i n) (setq x (bench-nop2 (aref keys j) r)) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('nop3 (while (< i n) (bench-nop3 (aref keys j) i r) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('nopremput (while (< i n) (bench-nop2 (aref keys j) r) (bench-nop3 (aref keys j) i r) (setq i (1+ i) j (if (= j 999) 0 (1+ j)))))
      ('loop (while (< i n) (setq x (aref keys j)) (setq i (1+ i) j (if (= j 999) 0 (1+ j))))))
    x))
(defun cg-bulk (op n)
  "Run bulk operation OP N times over 1000 elements."
  (let* ((size 1000)
         (keys (vconcat (number-sequence 0 (1- size))))
         (lst (mapcar (lambda (k) (% (* k 7) 100)) (number-sequence 0 (1- size))))
         (r (rhash-make :test 'eql)) (r2 (rhash-make :test 'eql)) (x nil) (i 0))
    (dotimes (k size) (rhash-put k k r) (rhash-put k (- k) r2))
    (garbage-collect)
    (setq gc-cons-threshold most-positive-fixnum)
    (pcase op
      ('getmany (while (< i n) (setq x (rhash-get-many keys r)) (setq i (1+ i))))
      ('tally (while (< i n) (setq x (rhash-tally-into keys r)) (setq i (1+ i))))
      ('equal (let ((r3 (rhash-copy r))) (while (< i n) (setq x (rhash-equal r r3)) (setq i (1+ i)))))
      ('uniq (while (< i n) (setq x (rhash-uniq lst)) (setq i (1+ i))))
      ('deldups (while (< i n) (setq x (delete-dups (copy-sequence lst))) (setq i (1+ i))))
      ('merge (while (< i n) (setq x (rhash-merge r r2)) (setq i (1+ i)))))
    x))
(defun cg-map (op n)
  "Walk a 1000-entry table N times with OP (maphash or rmap)."
  (let* ((r (rhash-make :test 'eql)) (h (make-hash-table)) (c 0) (i 0))
    (dotimes (k 1000) (rhash-put k k r) (puthash k k h))
    (garbage-collect)
    (setq gc-cons-threshold most-positive-fixnum)
    (pcase op
      ('maphash (while (< i n) (maphash (lambda (_k _v) (setq c (1+ c))) h) (setq i (1+ i))))
      ('rmap (while (< i n) (rhash-map (lambda (_k _v) (setq c (1+ c))) r) (setq i (1+ i))))
      ('lispwalk (let ((ks (make-vector 1000 0)) (vs (make-vector 1000 0)) (f (lambda (_k _v) (setq c (1+ c)))))
                   (while (< i n)
                     (let ((j 0))
                       (while (< j 1000)
                         (let ((k (aref ks j)) (v (aref vs j)))
                           (unless (or (eq k 'x) (eq v 'x))
                             (funcall f k v)))
                         (setq j (1+ j))))
                     (setq i (1+ i)))))
      ('nopwalk (while (< i n) (bench-nop-walk (lambda (_k _v) (setq c (1+ c))) 0 1000) (setq i (1+ i)))))
    c))

(provide 'cg)
;;; cg.el ends here
