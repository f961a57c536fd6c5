/* free_port — prints a TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for
 * a bind to port 0). Integration tests use it so that parallel ctest runs never share a port. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    perror("free_port: socket");
    return 1;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    perror("free_port: bind");
    close(fd);
    return 1;
  }
  printf("%u\n", (unsigned)ntohs(sa.sin_port));
  close(fd);
  return 0;
}
