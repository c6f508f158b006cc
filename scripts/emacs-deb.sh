#!/usr/bin/env bash
# scripts/emacs-deb.sh MAJOR [PREFIX]
#
# Make a Debian build of GNU Emacs MAJOR runnable *beside* the system Emacs
# (bookworm's 28.2) without installing it as the system emacs:
#   MAJOR=30: Emacs 30.1 from bookworm-backports (wrapper PREFIX/bin/emacs30)
#   MAJOR=27: Emacs 27.1 from bullseye, Debian 11 (wrapper PREFIX/bin/emacs27)
#
# The .debs (emacs-nox, emacs-bin-common, emacs-common) are fetched with
# `apt-get download` and unpacked with `dpkg -x` into PREFIX/root; only the
# shared libraries the binary links against are installed system-wide with
# apt.  A wrapper PREFIX/bin/emacsMAJOR sets EMACSLOADPATH / EMACSDATA / EMACSDOC /
# EMACSPATH and passes --dump-file, then execs the unpacked binary with "$@".
#
# Default PREFIX: $HOME/.cache/rhash/emacsMAJOR.  Idempotent: if the wrapper
# already reports a MAJOR.x version nothing is done.  On success the wrapper path
# is the last (and only) line on stdout.  apt/dpkg output goes to
# PREFIX/emacsMAJOR-install.log; its tail is printed on failure.
#
# Needs root (or passwordless sudo) only for apt: adding the suite's source,
# `apt-get update` and installing runtime libraries.  Debian 12 (bookworm).
set -euo pipefail
umask 022

MAJOR=${1:-}
case $MAJOR in
  30) SUITE=bookworm-backports ;;
  27) SUITE=bullseye ;;
  *) echo "usage: $0 27|30 [PREFIX]" >&2; exit 2 ;;
esac
shift
NAME=emacs$MAJOR
PKGS=(emacs-nox emacs-bin-common emacs-common)
APT_OPTS=(-q -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -o Acquire::http::Timeout=60)
SOURCES_FILE=/etc/apt/sources.list.d/rhash-$SUITE.sources
MARKER=.rhash-$NAME

LOG=
note() { echo "emacs-deb.sh: $*" >&2; }
die() {
  echo "emacs-deb.sh: error: $*" >&2
  if [ -n "$LOG" ] && [ -s "$LOG" ]; then
    echo "emacs-deb.sh: ---- last 40 lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2
  fi
  exit 1
}

home=${HOME:-}
[ -n "$home" ] || home=$(getent passwd "$(id -u)" | cut -d: -f6)
PREFIX=${1:-$home/.cache/rhash/$NAME}
[ -n "$PREFIX" ] || die "empty PREFIX"
case $PREFIX in /*) ;; *) PREFIX=$PWD/$PREFIX ;; esac
PREFIX=${PREFIX%/}
case $PREFIX in *:*) die "PREFIX must not contain ':' (it goes into EMACSLOADPATH): $PREFIX" ;; esac
[ -n "$PREFIX" ] || die "refusing to use / as PREFIX"
WRAPPER=$PREFIX/bin/$NAME

# ---------------------------------------------------------------- fast path
if [ -x "$WRAPPER" ]; then
  v=$("$WRAPPER" -Q --batch --eval '(princ emacs-version)' </dev/null 2>/dev/null || true)
  case $v in
    "$MAJOR".*) echo "$WRAPPER"; exit 0 ;;
  esac
fi

mkdir -p "$PREFIX/bin" || die "cannot create $PREFIX/bin"
PREFIX=$(cd "$PREFIX" && pwd -P)
WRAPPER=$PREFIX/bin/$NAME
ROOT=$PREFIX/root
LOG=$PREFIX/$NAME-install.log
: >"$LOG"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rhash-$NAME.XXXXXX")
STAGE=
cleanup() {
  rm -rf "$TMP"
  if [ -n "$STAGE" ]; then rm -rf "$STAGE"; fi
}
trap cleanup EXIT

if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo -n "$@"; }
else
  as_root() { die "need root (or passwordless sudo) for: $*"; }
fi
apt_get_root() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" "$@" </dev/null
}

# ------------------------------------------------------- 1. the suite's source
have_bpo_lists() {
  local out
  out=$(apt-cache policy emacs-nox 2>/dev/null || true)
  case $out in *"$SUITE"*) return 0 ;; *) return 1 ;; esac
}
bpo_configured() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if grep -Eq "^[^#]*[[:space:]]$SUITE([[:space:]]|\$)" "$f"; then return 0; fi
  done
  return 1
}

if ! have_bpo_lists; then
  if ! bpo_configured; then
    note "adding $SUITE apt source ($SOURCES_FILE)"
    printf '%s\n' \
      'Types: deb' \
      'URIs: http://deb.debian.org/debian' \
      "Suites: $SUITE" \
      'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
      | as_root tee "$SOURCES_FILE" >/dev/null || die "cannot write $SOURCES_FILE"
  fi
  note "apt-get update"
  apt_get_root update -qq >>"$LOG" 2>&1 || die "apt-get update failed"
  have_bpo_lists || die "no $SUITE candidate for emacs-nox after apt-get update"
fi

# ------------------------------------------------------------ 2. download .debs
chmod 755 "$TMP"
DEBDIR=$TMP/debs
mkdir -p "$DEBDIR"
# let apt's sandbox user write there (avoids the "unsandboxed download" warning)
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$DEBDIR"; fi
download() {
  (cd "$DEBDIR" && apt-get "${APT_OPTS[@]}" download "${PKGS[@]/%//$SUITE}" </dev/null) >>"$LOG" 2>&1
}
note "downloading ${PKGS[*]} from $SUITE"
if ! download; then
  # stale package lists (the archive moved on to a newer backport)?  retry once
  apt_get_root update -qq >>"$LOG" 2>&1 || die "apt-get update failed"
  rm -f "$DEBDIR"/*.deb
  download || die "apt-get download ${PKGS[*]} from $SUITE failed"
fi

declare -A DEB
for p in "${PKGS[@]}"; do
  f=$(ls "$DEBDIR/${p}_"*.deb 2>/dev/null | head -n 1 || true)
  [ -n "$f" ] || die "downloaded .deb for $p not found"
  ver=$(dpkg-deb -f "$f" Version)
  case $ver in "$MAJOR".*|*:"$MAJOR".*) ;; *) die "$p from $SUITE has version $ver, expected $MAJOR.x" ;; esac
  echo "downloaded $f ($ver)" >>"$LOG"
  DEB[$p]=$f
done

# ------------------------------------------------------------- 3. unpack
STAGE=$(mktemp -d "$PREFIX/.root.new.XXXXXX")
for p in "${PKGS[@]}"; do
  dpkg -x "${DEB[$p]}" "$STAGE" >>"$LOG" 2>&1 || die "dpkg -x ${DEB[$p]} failed"
done
touch "$STAGE/$MARKER"

VERDIR=
for d in "$STAGE"/usr/share/emacs/"$MAJOR".*; do
  if [ -d "$d/lisp" ]; then VERDIR=$d; fi
done
[ -n "$VERDIR" ] || die "no usr/share/emacs/$MAJOR.*/lisp in the unpacked packages"
EVER=${VERDIR##*/}

BIN=
for b in emacs-nox "emacs-$EVER" emacs; do
  if [ -f "$STAGE/usr/bin/$b" ] && [ ! -L "$STAGE/usr/bin/$b" ]; then BIN=usr/bin/$b; break; fi
done
[ -n "$BIN" ] || die "emacs binary not found under $STAGE/usr/bin"

# ------------------------------------------------------ 4. runtime libraries
missing_pkgs=()
deps=$(for p in emacs-nox emacs-bin-common; do dpkg-deb -f "${DEB[$p]}" Depends; echo ,; done)
while IFS= read -r dep; do
  dep=${dep%%|*}                                 # first alternative
  dep=$(sed -e 's/([^)]*)//g; s/\[[^]]*\]//g; s/:any//; s/[[:space:]]//g' <<<"$dep")
  case $dep in ''|emacs-*) continue ;; esac
  st=$(dpkg-query -W -f='${Status}' "$dep" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing_pkgs+=("$dep")
done < <(tr ',' '\n' <<<"$deps")

install_pkgs() {
  note "installing runtime libraries: $*"
  apt_get_root install -y -qq --no-install-recommends "$@" >>"$LOG" 2>&1 \
    || die "apt-get install $* failed"
}
if [ ${#missing_pkgs[@]} -gt 0 ]; then
  # bookworm itself may never have been fetched on a fresh container
  if ! apt-cache show "${missing_pkgs[0]}" >/dev/null 2>&1; then
    apt_get_root update -qq >>"$LOG" 2>&1 || die "apt-get update failed"
  fi
  install_pkgs "${missing_pkgs[@]}"
fi

notfound() { ldd "$STAGE/$BIN" 2>&1 | awk '/not found/ {print $1}' | sort -u; }
nf=$(notfound)
if [ -n "$nf" ]; then
  # Fallback: guess Debian package names from sonames (libfoo.so.N -> libfooN).
  guesses=()
  for so in $nf; do
    base=${so%%.so*}; n=${so##*.so.}; n=${n%%.*}
    case $base in *[0-9]) g=$base-$n ;; *) g=$base$n ;; esac
    guesses+=("$g")
  done
  install_pkgs "${guesses[@]}"
  nf=$(notfound)
  [ -z "$nf" ] || die "shared libraries still missing for $BIN: $(echo $nf)"
fi
ldd "$STAGE/$BIN" >>"$LOG" 2>&1

# ---------------------------------------------------------- 5. move in place
if [ -e "$ROOT" ] || [ -L "$ROOT" ]; then
  [ -f "$ROOT/$MARKER" ] || die "$ROOT exists but was not created by this script; refusing to replace it"
  rm -rf "$ROOT"
fi
mv "$STAGE" "$ROOT"
STAGE=
VERDIR=$ROOT/usr/share/emacs/$EVER
LISPDIR=$VERDIR/lisp
ETCDIR=$VERDIR/etc
[ -f "$ETCDIR/DOC" ] || die "$ETCDIR/DOC missing"

# Debian ships it as usr/libexec/emacs/<ver>/<triplet>/emacs-<fingerprint>.pdmp;
# take the one the binary accepts (a fingerprint mismatch makes it fail).
PDMP=
while IFS= read -r p; do
  # (--fingerprint is 28+; 27 just has to start with it)
  if "$ROOT/$BIN" --dump-file="$p" --fingerprint </dev/null >>"$LOG" 2>&1 \
     || { [ "$MAJOR" -lt 28 ] && EMACSLOADPATH=$VERDIR/lisp EMACSDATA=$VERDIR/etc \
            "$ROOT/$BIN" --dump-file="$p" -Q --batch --eval t </dev/null >>"$LOG" 2>&1; }; then
    PDMP=$p; break
  fi
done < <(find "$ROOT" -name '*.pdmp' -type f)
[ -n "$PDMP" ] || die "no usable .pdmp dump file in the unpacked packages"
# Emacs also looks for <binary>.pdmp next to the binary, so child Emacsen
# started via `invocation-directory'/`invocation-name' (ert subprocesses, async
# native compilation) find the dump even without --dump-file.
ln -sfnr "$PDMP" "$ROOT/$BIN.pdmp"

HEXL=$(find "$ROOT/usr/libexec" "$ROOT/usr/lib" -path "*/emacs/$EVER/*" -name hexl -type f 2>/dev/null | head -n 1 || true)
if [ -n "$HEXL" ]; then EXECDIR=${HEXL%/*}; else EXECDIR=${PDMP%/*}; fi

# load-path: the extracted site-lisp dirs, the lisp dir, then exactly the
# subdirectories that lisp/subdirs.el names (what Emacs itself would add).
# Deliberately *not* every directory below lisp/: e.g. cedet/srecode/map.elc,
# cedet/semantic/imenu.elc or leim/quail/japanese.elc would shadow the real
# `map', `imenu', `japanese' libraries.
SITEDIRS=()
for d in "$VERDIR/site-lisp" "$ROOT/usr/share/emacs/site-lisp"; do
  [ -d "$d" ] && SITEDIRS+=("$d")
done
subdirs=$(sed -n "/normal-top-level-add-to-load-path/,/)/p" "$LISPDIR/subdirs.el" | grep -o '"[^"]*"' | tr -d '"' || true)
[ -n "$subdirs" ] || die "could not read the subdirectory list from $LISPDIR/subdirs.el"
LOADPATH=
for d in "${SITEDIRS[@]}" "$LISPDIR"; do LOADPATH=${LOADPATH:+$LOADPATH:}$d; done
for s in $subdirs; do
  [ -d "$LISPDIR/$s" ] && LOADPATH=$LOADPATH:$LISPDIR/$s
done
# The list above is explicit; keep Emacs from splicing the same dirs in a
# second time at startup (normal-top-level loads subdirs.el even under -Q).
mv "$LISPDIR/subdirs.el" "$LISPDIR/subdirs.el.debian"

# ---------------------------------------------------------------- 6. wrapper
q() { printf '%q' "$1"; }
cat >"$WRAPPER.tmp" <<EOF
#!/bin/sh
# Generated by rhash scripts/emacs-deb.sh -- Debian's GNU Emacs $EVER unpacked in
# $ROOT
# (not installed as the system emacs).  Arguments are passed through.
EMACSLOADPATH=$(q "$LOADPATH")
EMACSDATA=$(q "$ETCDIR")
EMACSDOC=$(q "$ETCDIR")
EMACSPATH=$(q "$EXECDIR")
export EMACSLOADPATH EMACSDATA EMACSDOC EMACSPATH
exec $(q "$ROOT/$BIN") --dump-file=$(q "$PDMP") "\$@"
EOF
chmod 755 "$WRAPPER.tmp"
mv "$WRAPPER.tmp" "$WRAPPER"

# ---------------------------------------------------------------- 7. verify
VT=$TMP/verify
mkdir -p "$VT/home"
# Run the wrapper with a throw-away HOME so nothing lands in ~/.emacs.d.
run() { HOME=$VT/home "$WRAPPER" "$@" </dev/null 2>"$VT/err"; }
check() { # name, expected-stdout-regex, emacs args...
  local name=$1 re=$2 out; shift 2
  echo "verify: $name: $NAME $*" >>"$LOG"
  if ! out=$(run "$@"); then
    cat "$VT/err" >>"$LOG"; die "verification '$name' failed (exit status); stderr: $(cat "$VT/err")"
  fi
  echo "$out" >>"$LOG"
  if [ -s "$VT/err" ]; then
    cat "$VT/err" >>"$LOG"; die "verification '$name' wrote to stderr: $(cat "$VT/err")"
  fi
  [[ $out =~ $re ]] || die "verification '$name': unexpected output: $out"
}

if [ "$MAJOR" -ge 28 ]; then nc=t; else nc=nil; fi
check version "^$MAJOR\\.[0-9.]+ \\.so $nc\$" -Q --batch --eval \
  '(progn (require (quote ert)) (require (quote map)) (require (quote cl-lib)) (princ (format "%s %s %s\n" emacs-version module-file-suffix (featurep (quote native-compile)))))'
check requires '^ok$' -Q --batch --eval \
  '(progn (dolist (f (quote (cl-lib ert map gv subr-x seq pcase rx))) (require f)) (princ "ok"))'
# `message' writes to stderr in batch mode, so capture that as the output.
out=$(HOME=$VT/home "$WRAPPER" -Q --batch --eval '(message "%s" (functionp (quote module-load)))' </dev/null 2>&1) || die "module-load check failed: $out"
[ "$out" = t ] || die "module-load check: expected t, got: $out"

cat >"$VT/x.el" <<'EOF'
;;; x.el --- byte-compile check  -*- lexical-binding: t -*-
(require 'cl-lib)
(defun rhash-emacs30-x (xs) (cl-loop for x in xs sum (* x x)))
(provide 'x)
;;; x.el ends here
EOF
check byte-compile '^$' -Q --batch -f batch-byte-compile "$VT/x.el"
[ -f "$VT/x.elc" ] || die "batch-byte-compile did not produce x.elc"
check load-elc '^14$' -Q --batch -l "$VT/x.elc" --eval '(princ (rhash-emacs30-x (list 1 2 3)))'

# native-comp trampolines (e.g. cl-letf on a primitive in ert tests) need
# libgccjit + binutils + libgcc-dev; they are written to ~/.emacs.d/eln-cache.
if [ "$nc" = t ]; then
check trampoline '^42$' -Q --batch --eval \
  '(progn (require (quote cl-lib)) (cl-letf (((symbol-function (quote buffer-size)) (lambda (&rest _) 42))) (princ (funcall (quote buffer-size)))))'
ls "$VT"/home/.emacs.d/eln-cache/*/subr--trampoline-*.eln >>"$LOG" 2>&1 \
  || die "native-comp trampoline was not written to the eln-cache"
fi

# Really load a dynamic module when a C compiler is around (optional).
CC_BIN=$(command -v cc || command -v gcc || true)
if [ -n "$CC_BIN" ] && [ -f "$ROOT/usr/include/emacs-module.h" ]; then
  cat >"$VT/m.c" <<'EOF'
#include <emacs-module.h>
int plugin_is_GPL_compatible;
int emacs_module_init (struct emacs_runtime *rt) {
  emacs_env *env = rt->get_environment (rt);
  emacs_value args[] = { env->intern (env, "rhash-emacs30-mod") };
  env->funcall (env, env->intern (env, "provide"), 1, args);
  return 0;
}
EOF
  if "$CC_BIN" -shared -fPIC -I"$ROOT/usr/include" -o "$VT/m.so" "$VT/m.c" >>"$LOG" 2>&1; then
    check module-load '^t$' -Q --batch --eval \
      "(progn (module-load \"$VT/m.so\") (princ (featurep (quote rhash-emacs30-mod))))"
  else
    echo "verify: C compiler failed, skipped real module-load test" >>"$LOG"
  fi
fi

echo "ok: $("$WRAPPER" --version </dev/null | head -n 1)" >>"$LOG"
echo "$WRAPPER"
