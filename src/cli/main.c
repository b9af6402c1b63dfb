/* main.c — frugal's command dispatcher (being written). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "frugal: no command\n");
    return 2;
}
