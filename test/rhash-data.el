;;; rhash-data.el --- Comparing plain data and table entries in tests  -*- lexical-binding: t; -*-

;;; Commentary:

;; Helpers shared by the suites: what comes back from a native table or
;; a file must be `equal' to what went in, with the same string
;; multibyteness and the same float bits; temporary directories; and the
;; seeded generator of the differential suites.

;;; Code:

(require 'cl-lib)
(require 'rhash)

(defun rhash-data-same (a b)
  "Non-nil when A and B are `equal' with the same string multibyteness.
Floats must be `eql' (bit for bit), inside conses and vectors too."
  (cond ((and (stringp a) (stringp b))
         (and (equal a b) (eq (multibyte-string-p a) (multibyte-string-p b))))
        ((and (floatp a) (floatp b)) (eql a b))
        ((and (consp a) (consp b))
         (and (rhash-data-same (car a) (car b))
              (rhash-data-same (cdr a) (cdr b))))
        ((and (vectorp a) (vectorp b))
         (and (= (length a) (length b))
              (cl-every #'rhash-data-same a b)))
        (t (equal a b))))

(defun rhash-data-entries (table)
  "TABLE's entries (an rhash or built-in table) as (KEY . VALUE), in order.
An rhash table is walked by `rhash-map' (in the Lisp fallback, every
table is one), a built-in one by `maphash'."
  (let (acc)
    (if (rhash-p table)
        (rhash-map (lambda (k v) (push (cons k v) acc)) table)
      (maphash (lambda (k v) (push (cons k v) acc)) table))
    (nreverse acc)))

(defun rhash-data-same-entries (a b)
  "Non-nil when tables A and B hold `rhash-data-same' entries in one order."
  (let ((x (rhash-data-entries a)) (y (rhash-data-entries b)))
    (and (= (length x) (length y))
         (cl-every #'rhash-data-same x y))))

;;;; Files

(defmacro rhash-data-with-dir (var &rest body)
  "Bind VAR to a fresh temporary directory around BODY, then delete it."
  (declare (indent 1))
  `(let ((,var (file-name-as-directory (make-temp-file "rhash-test-" t))))
     (unwind-protect (progn ,@body)
       (delete-directory ,var t))))

;;;; Seeded generators (the differential suites)

(defun rhash-data-xorshift (x)
  "The xorshift32 state after X (a nonzero 32-bit integer)."
  (setq x (logxor x (logand (ash x 13) #xFFFFFFFF)))
  (setq x (logxor x (ash x -17)))
  (logxor x (logand (ash x 5) #xFFFFFFFF)))

(defun rhash-data-seed (var)
  "The seed in environment variable VAR, or 1 when VAR is unset or empty.
VAR holds an integer, or `random' to draw one."
  (let ((env (getenv var)))
    (cond ((or (null env) (equal env "")) 1)
          ((equal env "random") (random t) (1+ (random 2000000000)))
          (t (string-to-number env)))))

(provide 'rhash-data)
;;; rhash-data.el ends here
