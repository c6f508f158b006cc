/* A test fixture: another module's user-ptr objects, which every rhash
   function must refuse with (wrong-type-argument rhash-p X).  Built by
   test/run-ert.sh when a C compiler and emacs-module.h are available.  */
#include <stddef.h>
#include <emacs-module.h>

int plugin_is_GPL_compatible;

static int payload = 42;

static void
foreign_finalizer (void *p)
{
  (void) p;
}

static emacs_value
foreign_ptr (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) args; (void) data;
  return env->make_user_ptr (env, foreign_finalizer, &payload);
}

static emacs_value
null_ptr (emacs_env *env, ptrdiff_t nargs, emacs_value *args, void *data)
{
  (void) nargs; (void) args; (void) data;
  return env->make_user_ptr (env, NULL, NULL);
}

static void
defun (emacs_env *env, const char *name, emacs_function f, const char *doc)
{
  emacs_value args[2];
  args[0] = env->intern (env, name);
  args[1] = env->make_function (env, 0, 0, f, doc, NULL);
  env->funcall (env, env->intern (env, "defalias"), 2, args);
}

int
emacs_module_init (struct emacs_runtime *runtime)
{
  emacs_env *env = runtime->get_environment (runtime);
  defun (env, "rhash-test-foreign-user-ptr", foreign_ptr,
         "A user-ptr with another module's finalizer.");
  defun (env, "rhash-test-null-user-ptr", null_ptr,
         "A user-ptr with no finalizer and a null pointer.");
  emacs_value feature = env->intern (env, "rhash-foreign-module");
  env->funcall (env, env->intern (env, "provide"), 1, &feature);
  return 0;
}
