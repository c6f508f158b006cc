/* Empty module functions: the floor of a module call, and the cost of the
   env calls a table operation needs (type_of, get_user_finalizer +
   get_user_ptr, funcall).  */
#include <stdint.h>
#include <emacs-module.h>
int plugin_is_GPL_compatible;
static emacs_value sxhash_eq, integer_sym, string_sym, vals, keyv, strs, hole;
static emacs_value
nop1 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) data;
  return args[0];
}
/* Empty functions of put's and remove's shapes (3 and 2 arguments): the
   floor of any module `rhash-put' / `rhash-remove'.  */
static emacs_value
nop2 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) data;
  return args[0];
}
static emacs_value
nop3 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) env; (void) nargs; (void) data;
  return args[1];
}
static emacs_value
typeof1 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  return env->type_of (env, args[0]);
}
static emacs_value
userptr1 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  void (*fin) (void *) = env->get_user_finalizer (env, args[0]);
  if (env->non_local_exit_check (env) != emacs_funcall_exit_return)
    env->non_local_exit_clear (env);
  else if (fin)
    (void) env->get_user_ptr (env, args[0]);
  return args[0];
}
static emacs_value
funcall1 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  return env->funcall (env, sxhash_eq, 1, args);
}
/* What a minimal `rhash-get' of a fixnum key must ask of Emacs: check
   and open the table (user-ptr), classify the key (type_of, eq,
   extract_integer), read the value from a Lisp vector (vec_get).  The
   lookup itself is left out: it is ~2 ns in Rust.  */
/* The table check every get starts with: its user-ptr finalizer and
   pointer.  Returns 0 when TABLE is not a user-ptr with a finalizer.  */
static int
open_table (emacs_env *env, emacs_value table)
{
  void (*fin) (void *) = env->get_user_finalizer (env, table);
  if (env->non_local_exit_check (env) != emacs_funcall_exit_return || !fin)
    return 0;
  (void) env->get_user_ptr (env, table);
  return 1;
}
static emacs_value
get2 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  if (!open_table (env, args[1]))
    return args[0];
  emacs_value ty = env->type_of (env, args[0]);
  if (!env->eq (env, ty, integer_sym))
    return args[0];
  intmax_t i = env->extract_integer (env, args[0]);
  if (env->non_local_exit_check (env) != emacs_funcall_exit_return)
    return args[0];
  return env->vec_get (env, vals, i & 1023);
}
/* What a minimal `rhash-get' of a string key in an `equal' table must ask
   of Emacs when the lookup key is an equal copy, not the stored object:
   the table check, type_of, copying the key's bytes out, reading the
   stored key and copying its bytes to compare, and reading the value.  */
static char buf1[256], buf2[256];
static emacs_value
getstr2 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  if (!open_table (env, args[1]))
    return args[0];
  emacs_value ty = env->type_of (env, args[0]);
  if (!env->eq (env, ty, string_sym))
    return args[0];
  ptrdiff_t n1 = sizeof buf1, n2 = sizeof buf2;
  if (!env->copy_string_contents (env, args[0], buf1, &n1))
    {
      env->non_local_exit_clear (env);
      return args[0];
    }
  emacs_value stored = env->vec_get (env, strs, 0);
  if (!env->eq (env, stored, args[0]))
    (void) env->copy_string_contents (env, stored, buf2, &n2);
  return env->vec_get (env, vals, n1 & 1023);
}
/* The table check and classification of a fixnum key that every rhash
   operation starts with (as in `get2').  Returns -1 if it does not apply.  */
static intmax_t
open_fixnum (emacs_env *env, emacs_value key, emacs_value table)
{
  if (!open_table (env, table))
    return -1;
  emacs_value ty = env->type_of (env, key);
  if (!env->eq (env, ty, integer_sym))
    return -1;
  intmax_t i = env->extract_integer (env, key);
  if (env->non_local_exit_check (env) != emacs_funcall_exit_return)
    return -1;
  return i & 1023;
}
/* A minimal `rhash-put' over an existing key: store the value.  */
static emacs_value
put3 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  intmax_t i = open_fixnum (env, args[0], args[2]);
  if (i >= 0)
    env->vec_set (env, vals, i, args[1]);
  return args[1];
}
/* A minimal `rhash-put' of a new key: store the key and the value.  */
static emacs_value
putfresh3 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  intmax_t i = open_fixnum (env, args[0], args[2]);
  if (i >= 0)
    {
      env->vec_set (env, keyv, i, args[0]);
      env->vec_set (env, vals, i, args[1]);
    }
  return args[1];
}
/* A minimal `rhash-remove': release the key and the value (as `remhash'
   does), so that the collector can reclaim them.  */
static emacs_value
remove2 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  intmax_t i = open_fixnum (env, args[0], args[1]);
  if (i >= 0)
    {
      env->vec_set (env, keyv, i, hole);
      env->vec_set (env, vals, i, hole);
    }
  return hole;
}
/* What a bulk conversion must ask per entry at the least: read the key and
   the value out of a Lisp vector and classify the key.  ARGS[0] is a
   vector [K0 V0 K1 V1 ...] of fixnum keys.  */
static emacs_value
readpairs1 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  ptrdiff_t n = env->vec_size (env, args[0]);
  intmax_t sum = 0;
  for (ptrdiff_t j = 0; j + 1 < n; j += 2)
    {
      emacs_value k = env->vec_get (env, args[0], j);
      (void) env->vec_get (env, args[0], j + 1);
      emacs_value ty = env->type_of (env, k);
      if (env->eq (env, ty, integer_sym))
        sum += env->extract_integer (env, k);
    }
  return env->make_integer (env, sum);
}
/* The floor of a walk that calls Lisp per entry, as `rhash-map' does:
   FUNCTION called with the same two arguments N times, through
   env->funcall and nothing else.  */
static emacs_value
walk3 (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) data;
  intmax_t n = env->extract_integer (env, args[2]);
  emacs_value kv[2] = { args[1], args[1] };
  for (intmax_t i = 0; i < n; i++)
    {
      env->funcall (env, args[0], 2, kv);
      if (env->non_local_exit_check (env) != emacs_funcall_exit_return)
        break;
    }
  return args[1];
}
static void
defun (emacs_env *env, const char *name, int arity, emacs_function f, const char *doc)
{
  emacs_value a[2];
  a[0] = env->intern (env, name);
  a[1] = env->make_function (env, arity, arity, f, doc, NULL);
  env->funcall (env, env->intern (env, "defalias"), 2, a);
}
int
emacs_module_init (struct emacs_runtime *rt)
{
  emacs_env *env = rt->get_environment (rt);
  emacs_value mv[2];
  sxhash_eq = env->make_global_ref (env, env->intern (env, "sxhash-eq"));
  integer_sym = env->make_global_ref (env, env->intern (env, "integer"));
  string_sym = env->make_global_ref (env, env->intern (env, "string"));
  emacs_value one_string = env->make_string (env, "k00000000007", 12);
  strs = env->make_global_ref (env, env->funcall (env, env->intern (env, "vector"), 1, &one_string));
  mv[0] = env->make_integer (env, 1024);
  mv[1] = env->intern (env, "nil");
  vals = env->make_global_ref (env, env->funcall (env, env->intern (env, "make-vector"), 2, mv));
  keyv = env->make_global_ref (env, env->funcall (env, env->intern (env, "make-vector"), 2, mv));
  hole = env->make_global_ref (env, env->intern (env, "bench--hole"));
  defun (env, "bench-nop1", 1, nop1, "Return ARG (empty module function).");
  defun (env, "bench-nop2", 2, nop2, "Return the first of 2 args (empty module function).");
  defun (env, "bench-nop3", 3, nop3, "Return the second of 3 args (empty module function).");
  defun (env, "bench-nop-type-of", 1, typeof1, "Return (type-of ARG) via env->type_of.");
  defun (env, "bench-nop-user-ptr", 1, userptr1, "Read ARG's user-ptr finalizer and pointer.");
  defun (env, "bench-nop-funcall", 1, funcall1, "Return (sxhash-eq ARG) via env->funcall.");
  defun (env, "bench-nop-get", 2, get2, "The env calls of a minimal fixnum `rhash-get'.");
  defun (env, "bench-nop-get-str", 2, getstr2, "The env calls of a minimal string `rhash-get'.");
  defun (env, "bench-nop-put", 3, put3, "The env calls of a minimal fixnum `rhash-put' over a key.");
  defun (env, "bench-nop-put-fresh", 3, putfresh3, "The env calls of a minimal fixnum `rhash-put' of a new key.");
  defun (env, "bench-nop-remove", 2, remove2, "The env calls of a minimal fixnum `rhash-remove'.");
  defun (env, "bench-nop-read-pairs", 1, readpairs1, "The env calls of reading fixnum KEY VALUE pairs from a vector.");
  defun (env, "bench-nop-walk", 3, walk3, "Call FUNCTION with (X X) N times via env->funcall: (fn FUNCTION X N).");
  return 0;
}
