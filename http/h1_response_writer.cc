// http/h1_response_writer.cc: see h1_response_writer.h.
#include "http/h1_response_writer.h"

namespace torii::http {

bool H1ResponseWriter::WriteInterim(core::Conn& conn, const MessageHead& head,
                                    std::string* scratch) const {
  if (minor_ == 0) {
    return false;
  }
  scratch->clear();
  BuildClientResponseHead(head, Framing::kNone, /*head_request=*/false, /*close=*/false,
                          /*client_minor=*/1, /*extra=*/{}, scratch);
  conn.Write(*scratch);
  return true;
}

void H1ResponseWriter::WriteContinue(core::Conn& conn) {
  conn.Write("HTTP/1.1 100 Continue\r\n\r\n");
}

void H1ResponseWriter::WriteSwitchingProtocols(core::Conn& conn, const MessageHead& head,
                                               std::string_view extra, std::string* scratch) {
  framing_ = Framing::kNone;
  scratch->clear();
  BuildClientResponseHead(head, Framing::kNone, /*head_request=*/false, /*close=*/false,
                          /*client_minor=*/1, extra, scratch);
  conn.Write(*scratch);
}

void H1ResponseWriter::WriteHead(core::Conn& conn, const MessageHead& head, Body body,
                                 bool head_request, bool* close, std::string_view extra,
                                 const HeadEdits& edits, std::string* scratch) {
  // Keep a known length; otherwise chunked for HTTP/1.1 clients and close-delimited for
  // HTTP/1.0 ones.
  switch (body) {
    case Body::kNone:
      framing_ = Framing::kNone;
      break;
    case Body::kLength:
      framing_ = Framing::kContentLength;
      break;
    case Body::kUnknown:
      if (minor_ >= 1) {
        framing_ = Framing::kChunked;
      } else {
        framing_ = Framing::kUntilClose;
        *close = true;
      }
      break;
  }
  scratch->clear();
  BuildClientResponseHead(head, framing_, head_request, *close, minor_, extra, edits, scratch);
  conn.Write(*scratch);
}

void H1ResponseWriter::WriteBody(core::Conn& conn, std::string_view bytes, bool lend,
                                 std::string* scratch,
                                 const std::shared_ptr<const void>& owner) const {
  if (bytes.empty()) {
    return;
  }
  if (framing_ == Framing::kChunked) {
    // One chunk per piece, without extensions.
    scratch->clear();
    AppendChunkHeader(bytes.size(), scratch);
    conn.Write(*scratch);
  }
  if (owner) {
    conn.WritePinned(bytes, owner);
  } else if (lend) {
    conn.WriteFromRecvBuffer(bytes);
  } else {
    conn.Write(bytes);
  }
  if (framing_ == Framing::kChunked) {
    conn.Write("\r\n");
  }
}

bool H1ResponseWriter::WriteEnd(core::Conn& conn, std::span<const HeaderView> trailers,
                                std::string* scratch) const {
  if (framing_ == Framing::kChunked) {
    if (trailers.empty()) {
      conn.Write("0\r\n\r\n");
    } else {
      scratch->clear();
      AppendLastChunk(trailers, scratch);
      conn.Write(*scratch);
    }
  }
  return framing_ == Framing::kUntilClose;
}

size_t H1ResponseWriter::WriteLocalReply(core::Conn& conn, int status, bool close,
                                         std::string_view extra, std::string_view body,
                                         std::string_view content_type, std::string* scratch) {
  framing_ = Framing::kContentLength;
  scratch->clear();
  const std::string_view sent =
      content_type.empty() ? BuildLocalReply(status, close, extra, scratch)
                           : BuildLocalReply(status, close, extra, body, content_type, scratch);
  conn.Write(*scratch);
  return sent.size();
}

}  // namespace torii::http
