;;; compact-rss.el --- RSS after rhash-compact  -*- lexical-binding: t; -*-

;;; Commentary:

;; emacs -Q --batch -L lisp -l bench/compact-rss.el
;;
;; Issue 10's target: `rhash-compact' of a 10^6-key table down to 10
;; keys brings RSS back within 10% of Emacs's baseline plus a fresh table
;; of 10 keys.  Prints the RSS at each step (Linux /proc/self/statm).

;;; Code:

(require 'rhash)

(defun compact-rss--kb ()
  "Resident set size of this Emacs in KiB."
  (with-temp-buffer
    (insert-file-contents "/proc/self/statm")
    (* 4 (nth 1 (mapcar #'string-to-number (split-string (buffer-string)))))))

(defun compact-rss--collect ()
  "Collect twice, freeing released global references in between."
  (garbage-collect) (rhash-p nil) (garbage-collect))

(let ((base (progn (compact-rss--collect) (compact-rss--kb)))
      (fresh (rhash-make))
      (r (rhash-make)))
  (dotimes (i 10) (rhash-put i i fresh))
  (compact-rss--collect)
  (let ((with-fresh (compact-rss--kb)))
    (dotimes (i 1000000) (rhash-put i i r))
    (compact-rss--collect)
    (let ((full (compact-rss--kb)))
      (dotimes (i 999990) (rhash-remove (+ i 10) r))
      (compact-rss--collect)
      (let ((removed (compact-rss--kb)))
        (rhash-compact r)
        (compact-rss--collect)
        (let ((after (compact-rss--kb)))
          (message "Emacs %s: baseline %d KiB; with a fresh 10-key table %d; 10^6 keys %d; \
10 left %d; after rhash-compact %d (%.1f%% above baseline + fresh table)"
                   emacs-version base with-fresh full removed after
                   (* 100.0 (/ (- after with-fresh) (float with-fresh)))))))))

;;; compact-rss.el ends here
