// bench/tls_ttfb.cc: time to the first response byte over a new TLS 1.3 connection that
// resumes a session ticket, with the request sent after the handshake or as early data
// (0-RTT). A measuring client for bench/run.sh early, not a micro-benchmark.
//
//   tls_ttfb --addr 127.0.0.1:PORT [--sni bench.test] [--path /?size=100] [--count 2000]
//            [--early]
//
// One full handshake first (its ticket is the first to resume), then `count` connections in a
// row, each resuming the newest ticket the previous one received (a ticket carries early data
// once where the server enforces it), sending "GET path" with Connection: close, and timing
// from connect() to the first byte of the answer. Prints one line: median_us p90_us p99_us
// early_accepted_fraction resumed_fraction.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Args {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string sni = "bench.test";
  std::string path = "/?size=100";
  int count = 2000;
  bool early = false;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "tls_ttfb: %s\n", why.c_str());
  ERR_print_errors_fp(stderr);
  std::exit(1);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        Die("missing value for " + k);
      }
      return argv[++i];
    };
    if (k == "--addr") {
      const std::string v = value();
      const size_t colon = v.rfind(':');
      if (colon == std::string::npos) {
        Die("--addr HOST:PORT");
      }
      a.host = v.substr(0, colon);
      a.port = std::atoi(v.c_str() + colon + 1);
    } else if (k == "--sni") {
      a.sni = value();
    } else if (k == "--path") {
      a.path = value();
    } else if (k == "--count") {
      a.count = std::atoi(value().c_str());
    } else if (k == "--early") {
      a.early = true;
    } else {
      Die("unknown option " + k);
    }
  }
  if (a.port <= 0 || a.count <= 0) {
    Die("usage: tls_ttfb --addr HOST:PORT [--sni NAME] [--path P] [--count N] [--early]");
  }
  return a;
}

int Connect(const Args& a) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(a.port));
  inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    Die("connect: " + std::string(std::strerror(errno)));
  }
  return fd;
}

struct Result {
  double us = 0;
  bool early_accepted = false;
  bool resumed = false;
  SSL_SESSION* next = nullptr;  // the newest ticket received
};

// One connection: resume `session` (may be null), send the request (as early data when asked
// and the ticket allows), time the first answer byte, read the rest.
Result Visit(SSL_CTX* ctx, const Args& a, SSL_SESSION* session, const std::string& request) {
  Result r;
  const auto t0 = std::chrono::steady_clock::now();
  const int fd = Connect(a);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, a.sni.c_str());
  if (session != nullptr) {
    SSL_set_session(ssl, session);
  }
  bool sent = false;
  if (a.early && session != nullptr && SSL_SESSION_get_max_early_data(session) > 0) {
    size_t written = 0;
    sent = SSL_write_early_data(ssl, request.data(), request.size(), &written) == 1;
  }
  if (const int rc = SSL_connect(ssl); rc != 1) {
    Die("handshake failed (SSL_get_error " + std::to_string(SSL_get_error(ssl, rc)) + ")");
  }
  r.early_accepted = SSL_get_early_data_status(ssl) == SSL_EARLY_DATA_ACCEPTED;
  r.resumed = SSL_session_reused(ssl) == 1;
  if (!sent || !r.early_accepted) {
    if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) <= 0) {
      Die("write failed");
    }
  }
  char buf[16384];
  int n = SSL_read(ssl, buf, sizeof(buf));
  const auto t1 = std::chrono::steady_clock::now();
  if (n <= 0 || std::strncmp(buf, "HTTP/1.1 200", 12) != 0) {
    Die("no 200 answer");
  }
  while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
  }
  r.us = std::chrono::duration<double, std::micro>(t1 - t0).count();
  r.next = SSL_get1_session(ssl);
  // The server closed (Connection: close): as if shut down both ways, so that SSL_free does
  // not mark the session not resumable.
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl);
  ::close(fd);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  const std::string request = "GET " + a.path + " HTTP/1.1\r\nHost: " + a.sni +
                              "\r\nConnection: close\r\n\r\n";
  Result first = Visit(ctx, a, nullptr, request);
  SSL_SESSION* session = first.next;
  std::vector<double> times;
  int early = 0;
  int resumed = 0;
  for (int i = 0; i < a.count; ++i) {
    Result r = Visit(ctx, a, session, request);
    times.push_back(r.us);
    early += r.early_accepted ? 1 : 0;
    resumed += r.resumed ? 1 : 0;
    if (r.next != nullptr) {
      SSL_SESSION_free(session);
      session = r.next;
    }
  }
  SSL_SESSION_free(session);
  std::sort(times.begin(), times.end());
  const auto at = [&](double q) { return times[static_cast<size_t>(q * (times.size() - 1))]; };
  std::printf("%.1f %.1f %.1f %.2f %.2f\n", at(0.5), at(0.9), at(0.99),
              static_cast<double>(early) / a.count, static_cast<double>(resumed) / a.count);
  SSL_CTX_free(ctx);
  return 0;
}
