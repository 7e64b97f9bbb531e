/* The pod sandbox's process (what registry.k8s.io/pause provides elsewhere):
   sleep until told to stop, reap orphans. Built static by up.sh, FROM scratch. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) { (void)signo; exit(0); }
static void reap(int signo) { (void)signo; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  struct sigaction down = {.sa_handler = stop};
  sigaction(SIGINT, &down, NULL);
  sigaction(SIGTERM, &down, NULL);
  struct sigaction children = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGCHLD, &children, NULL);
  for (;;) pause();
  return 42;
}
