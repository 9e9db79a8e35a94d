// cache/http_date.cc: ParseHttpDate, FormatHttpDate (http_date.h).
#include "cache/http_date.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "base/text.h"

namespace torii::cache {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
// 0001-01-01T00:00:00 and 9999-12-31T23:59:59, the range FormatHttpDate() can write.
constexpr int64_t kMinFormattable = -62135596800;
constexpr int64_t kMaxFormattable = 253402300799;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                    // [0, 399]
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            // [0, 146096]
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t year;
  int month;  // 1..12
  int day;    // 1..31
};

// The inverse of DaysFromCivil (H. Hinnant's civil_from_days).
Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

bool IsLeap(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

int DaysInMonth(int64_t y, int m) {
  static constexpr std::array<int, 12> kDaysIn = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDaysIn[m - 1];
}

// A fixed-format reader over the value: each step consumes exactly what it expects or fails.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool Lit(std::string_view lit) {
    if (s_.substr(i_, lit.size()) != lit) {
      return false;
    }
    i_ += lit.size();
    return true;
  }
  // Exactly `n` decimal digits.
  bool Digits(int n, int* out) {
    int v = 0;
    for (int k = 0; k < n; ++k, ++i_) {
      if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') {
        return false;
      }
      v = v * 10 + (s_[i_] - '0');
    }
    *out = v;
    return true;
  }
  // One of `names` (case-sensitive); its index into *out.
  template <size_t N>
  bool OneOf(const std::array<std::string_view, N>& names, int* out) {
    for (size_t k = 0; k < N; ++k) {
      if (Lit(names[k])) {
        *out = static_cast<int>(k);
        return true;
      }
    }
    return false;
  }
  bool AtEnd() const { return i_ == s_.size(); }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

struct Fields {
  int64_t year = 0;
  int month = 0;  // 1..12
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

// time-of-day = hour ":" minute ":" second
bool ReadTime(Cursor* c, Fields* f) {
  return c->Digits(2, &f->hour) && c->Lit(":") && c->Digits(2, &f->minute) && c->Lit(":") &&
         c->Digits(2, &f->second);
}

bool ReadMonth(Cursor* c, Fields* f) {
  int m;
  if (!c->OneOf(kMonths, &m)) {
    return false;
  }
  f->month = m + 1;
  return true;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
bool ReadImfFixdate(std::string_view s, Fields* f) {
  Cursor c(s);
  int ignored, year;
  if (!(c.OneOf(kDays, &ignored) && c.Lit(", ") && c.Digits(2, &f->day) && c.Lit(" ") &&
        ReadMonth(&c, f) && c.Lit(" ") && c.Digits(4, &year) && c.Lit(" ") && ReadTime(&c, f) &&
        c.Lit(" GMT") && c.AtEnd())) {
    return false;
  }
  f->year = year;
  return true;
}

// rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT" (year: two digits, resolved by the caller)
bool ReadRfc850(std::string_view s, Fields* f) {
  Cursor c(s);
  int ignored, year;
  if (!(c.OneOf(kLongDays, &ignored) && c.Lit(", ") && c.Digits(2, &f->day) && c.Lit("-") &&
        ReadMonth(&c, f) && c.Lit("-") && c.Digits(2, &year) && c.Lit(" ") && ReadTime(&c, f) &&
        c.Lit(" GMT") && c.AtEnd())) {
    return false;
  }
  f->year = year;
  return true;
}

// asctime-date: "Sun Nov  6 08:49:37 1994" (day: two digits, or a space and one digit)
bool ReadAsctime(std::string_view s, Fields* f) {
  Cursor c(s);
  int ignored, year;
  if (!(c.OneOf(kDays, &ignored) && c.Lit(" ") && ReadMonth(&c, f) && c.Lit(" "))) {
    return false;
  }
  const bool day_ok = c.Lit(" ") ? c.Digits(1, &f->day) : c.Digits(2, &f->day);
  if (!(day_ok && c.Lit(" ") && ReadTime(&c, f) && c.Lit(" ") && c.Digits(4, &year) && c.AtEnd())) {
    return false;
  }
  f->year = year;
  return true;
}

bool InRange(const Fields& f) {
  return f.day >= 1 && f.day <= DaysInMonth(f.year, f.month) && f.hour <= 23 && f.minute <= 59 &&
         f.second <= 60;
}

int64_t ToUnix(const Fields& f) {
  return DaysFromCivil(f.year, f.month, f.day) * kSecondsPerDay + f.hour * 3600 + f.minute * 60 +
         f.second;
}

// Floor division of a time by one day, so times before 1970 fall on the day they belong to.
int64_t DayOf(int64_t t) { return (t >= 0 ? t : t - kSecondsPerDay + 1) / kSecondsPerDay; }

// RFC 9110 §5.6.7: a two-digit year names the latest year with those digits that is not more
// than 50 years after `now`. f->year holds the two digits on entry, the full year on return.
void ResolveTwoDigitYear(int64_t now, Fields* f) {
  now = std::clamp(now, kMinFormattable, kMaxFormattable);
  const int64_t now_day = DayOf(now);
  const Civil today = CivilFromDays(now_day);
  f->year += today.year - ((today.year % 100) + 100) % 100;  // in now's century
  // "More than 50 years after now": later than the same calendar day and time 50 years on.
  // (DaysFromCivil takes 29 February of a common year as 1 March, which is fine here.)
  const int64_t horizon = DaysFromCivil(today.year + 50, today.month, today.day) * kSecondsPerDay +
                          (now - now_day * kSecondsPerDay);
  if (ToUnix(*f) > horizon) {
    f->year -= 100;
    return;
  }
  Fields next_century = *f;
  next_century.year += 100;
  if (ToUnix(next_century) <= horizon) {
    f->year += 100;
  }
}

void Put2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

std::optional<int64_t> ParseHttpDate(std::string_view value, int64_t now) {
  const std::string_view s = base::TrimOws(value);
  Fields f;
  if (s.size() > 3 && s[3] == ',') {
    if (!ReadImfFixdate(s, &f)) {
      return std::nullopt;
    }
  } else if (s.size() > 3 && s[3] == ' ') {
    if (!ReadAsctime(s, &f)) {
      return std::nullopt;
    }
  } else if (ReadRfc850(s, &f)) {
    ResolveTwoDigitYear(now, &f);
  } else {
    return std::nullopt;
  }
  if (!InRange(f)) {
    return std::nullopt;
  }
  return ToUnix(f);
}

std::optional<int64_t> ParseHttpDate(std::string_view value) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return ParseHttpDate(value, std::chrono::duration_cast<std::chrono::seconds>(now).count());
}

void FormatHttpDate(int64_t unix_seconds, char out[kHttpDateLength]) {
  const int64_t t = std::clamp(unix_seconds, kMinFormattable, kMaxFormattable);
  const int64_t days = DayOf(t);
  const int64_t secs = t - days * kSecondsPerDay;
  const Civil c = CivilFromDays(days);
  const int weekday = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
  const std::string_view day_name = kDays[weekday];
  const std::string_view month_name = kMonths[c.month - 1];
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  std::copy(day_name.begin(), day_name.end(), out);
  out[3] = ',';
  out[4] = ' ';
  Put2(out + 5, c.day);
  out[7] = ' ';
  std::copy(month_name.begin(), month_name.end(), out + 8);
  out[11] = ' ';
  Put2(out + 12, static_cast<int>(c.year / 100));
  Put2(out + 14, static_cast<int>(c.year % 100));
  out[16] = ' ';
  Put2(out + 17, static_cast<int>(secs / 3600));
  out[19] = ':';
  Put2(out + 20, static_cast<int>(secs / 60 % 60));
  out[22] = ':';
  Put2(out + 23, static_cast<int>(secs % 60));
  std::copy_n(" GMT", 4, out + 25);
}

std::string FormatHttpDate(int64_t unix_seconds) {
  std::string s(kHttpDateLength, '\0');
  FormatHttpDate(unix_seconds, s.data());
  return s;
}

}  // namespace torii::cache
