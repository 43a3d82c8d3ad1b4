/* Placeholder until the HTTP front lands: the gateway does not serve yet. */
#include <stdio.h>

int main(void)
{
    fputs("barista-gateway: not built yet\n", stderr);
    return 1;
}
