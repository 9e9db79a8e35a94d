// tests/cache/http_date_test.cc: ParseHttpDate / FormatHttpDate (cache/http_date.h): the three
// formats of RFC 9110 §5.6.7, the 50-year rule, ranges, leap years, round trips, bad input.
#include "cache/http_date.h"

#include <gtest/gtest.h>

#include <string>

namespace torii::cache {
namespace {

constexpr int64_t k1994 = 784111777;      // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110)
constexpr int64_t kNow2025 = 1750000000;  // Sun, 15 Jun 2025 15:06:40 GMT
constexpr int64_t kMax = 253402300799;    // Fri, 31 Dec 9999 23:59:59 GMT
constexpr int64_t kMin = -62135596800;    // Mon, 01 Jan 0001 00:00:00 GMT

// The RFC's example, in each of the three formats, is the same instant.
TEST(HttpDateTest, ParsesTheRfcExampleInAllThreeFormats) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", kNow2025), k1994);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", kNow2025), k1994);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994", kNow2025), k1994);
  EXPECT_EQ(ParseHttpDate("Sun Nov 06 08:49:37 1994", kNow2025), k1994);
  EXPECT_EQ(ParseHttpDate("  Sun, 06 Nov 1994 08:49:37 GMT\t", kNow2025), k1994);
}

// Known instants: the epoch, before it, leap days, the end of 9999.
TEST(HttpDateTest, ParsesKnownInstants) {
  struct Case {
    const char* text;
    int64_t want;
  };
  const Case cases[] = {
      {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
      {"Wed, 31 Dec 1969 23:59:59 GMT", -1},
      {"Tue, 29 Feb 2000 12:00:00 GMT", 951825600},
      {"Thu, 29 Feb 2024 00:00:00 GMT", 1709164800},
      {"Fri, 01 Mar 2024 00:00:00 GMT", 1709251200},
      {"Sun, 15 Jun 2025 15:06:40 GMT", kNow2025},
      {"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648},
      {"Fri, 31 Dec 9999 23:59:59 GMT", kMax},
      {"Mon, 01 Jan 0001 00:00:00 GMT", kMin},
      {"Sat, 31 Dec 2016 23:59:60 GMT", 1483228800},  // leap second = next minute's first
      {"Thu Jan  1 00:00:00 1970", 0},
      {"Thu Feb 29 00:00:00 2024", 1709164800},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseHttpDate(c.text, kNow2025), c.want) << c.text;
  }
}

// RFC 850 two-digit years: the most recent year with those digits, unless that is more than
// 50 years after now.
TEST(HttpDateTest, TwoDigitYearsFollowTheFiftyYearRule) {
  // now = 2025-06-15: "75" is 2075 (50 years on, to the day, not "more than"); "76" is 1976.
  EXPECT_EQ(ParseHttpDate("Saturday, 15-Jun-75 15:06:40 GMT", kNow2025),
            ParseHttpDate("Sat, 15 Jun 2075 15:06:40 GMT", kNow2025));
  EXPECT_EQ(ParseHttpDate("Saturday, 15-Jun-75 15:06:41 GMT", kNow2025),
            ParseHttpDate("Sun, 15 Jun 1975 15:06:41 GMT", kNow2025));
  EXPECT_EQ(ParseHttpDate("Monday, 01-Jan-76 00:00:00 GMT", kNow2025),
            ParseHttpDate("Thu, 01 Jan 1976 00:00:00 GMT", kNow2025));
  EXPECT_EQ(ParseHttpDate("Sunday, 01-Jan-00 00:00:00 GMT", kNow2025),
            ParseHttpDate("Sat, 01 Jan 2000 00:00:00 GMT", kNow2025));
  EXPECT_EQ(ParseHttpDate("Friday, 31-Dec-99 23:59:59 GMT", kNow2025),
            ParseHttpDate("Fri, 31 Dec 1999 23:59:59 GMT", kNow2025));
  // Seen from 1999, "49" is 2049 (not more than 50 years on), "50" is 1950.
  const int64_t now_1999 = *ParseHttpDate("Fri, 01 Jan 1999 00:00:00 GMT", 0);
  EXPECT_EQ(ParseHttpDate("Thursday, 01-Jan-49 00:00:00 GMT", now_1999),
            ParseHttpDate("Fri, 01 Jan 2049 00:00:00 GMT", 0));
  EXPECT_EQ(ParseHttpDate("Sunday, 01-Jan-50 00:00:00 GMT", now_1999),
            ParseHttpDate("Sun, 01 Jan 1950 00:00:00 GMT", 0));
  // 29 February of a two-digit year only exists in the year it resolves to.
  EXPECT_EQ(ParseHttpDate("Tuesday, 29-Feb-00 00:00:00 GMT", kNow2025), 951782400);
  EXPECT_EQ(ParseHttpDate("Sunday, 29-Feb-80 00:00:00 GMT", kNow2025),
            ParseHttpDate("Fri, 29 Feb 1980 00:00:00 GMT", 0));
  EXPECT_EQ(ParseHttpDate("Monday, 29-Feb-99 00:00:00 GMT", kNow2025), std::nullopt);
}

// Everything outside the grammar, and dates that do not exist, are rejected.
TEST(HttpDateTest, RejectsInvalidInput) {
  const char* bad[] = {
      "",
      " ",
      "0",
      "-1",
      "now",
      "Sun, 06 Nov 1994 08:49:37",        // no zone
      "Sun, 06 Nov 1994 08:49:37 UTC",    // other zone
      "Sun, 06 Nov 1994 08:49:37 +0000",  // numeric offset
      "Sun, 06 Nov 1994 08:49:37 gmt",    // GMT is case-sensitive
      "sun, 06 Nov 1994 08:49:37 GMT",    // so are day and month names
      "Sun, 06 nov 1994 08:49:37 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT",  // one-digit day
      "Sun, 06 Nov 94 08:49:37 GMT",   // two-digit year in IMF-fixdate
      "Sun, 06 Nov 1994 8:49:37 GMT",
      "Sun, 06 Nov 1994 08:49 GMT",
      "Sun,  06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMTx",
      "Sun, 06 Nov 1994 08:49:37 GMT junk",
      "Xyz, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Foo 1994 08:49:37 GMT",
      "Sun, 00 Nov 1994 08:49:37 GMT",  // day 0
      "Sun, 31 Nov 1994 08:49:37 GMT",  // November has 30 days
      "Mon, 29 Feb 2100 00:00:00 GMT",  // 2100 is not a leap year
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 23:60:00 GMT",
      "Sun, 06 Nov 1994 23:59:61 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
      "Sunday, 06-Nov-1994 08:49:37 GMT",  // four-digit year in RFC 850
      "Sun, 06-Nov-94 08:49:37 GMT",       // short day name in RFC 850
      "Sunday 06-Nov-94 08:49:37 GMT",
      "Sunday, 06-Nov-94 08:49:37",
      "Sun Nov 6 08:49:37 1994",  // asctime day needs its padding
      "Sun Nov  6 08:49:37 94",
      "Sun Nov  6 08:49:37 1994 GMT",
      "Sun Nov 31 08:49:37 1994",
      "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",  // two members
  };
  for (const char* text : bad) {
    EXPECT_EQ(ParseHttpDate(text, kNow2025), std::nullopt) << "[" << text << "]";
  }
  EXPECT_EQ(ParseHttpDate(std::string(64 * 1024, 'S'), kNow2025), std::nullopt);
  EXPECT_EQ(ParseHttpDate(std::string("Sun, 06 Nov 1994 08:49:37 GMT\0", 30), kNow2025),
            std::nullopt);
}

// FormatHttpDate writes IMF-fixdate, exactly 29 characters, with the right day name.
TEST(HttpDateTest, FormatsImfFixdate) {
  EXPECT_EQ(FormatHttpDate(k1994), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(951825600), "Tue, 29 Feb 2000 12:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(kNow2025), "Sun, 15 Jun 2025 15:06:40 GMT");
  EXPECT_EQ(FormatHttpDate(kMax), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(kMin), "Mon, 01 Jan 0001 00:00:00 GMT");
  // Out of range: clamped.
  EXPECT_EQ(FormatHttpDate(kMax + 1), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(INT64_MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(INT64_MIN), "Mon, 01 Jan 0001 00:00:00 GMT");

  char buf[kHttpDateLength + 1];
  buf[kHttpDateLength] = '#';
  FormatHttpDate(k1994, buf);
  EXPECT_EQ(std::string(buf, kHttpDateLength), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(buf[kHttpDateLength], '#');  // exactly 29 chars written
}

// Formatting then parsing returns the same second, across centuries, leap years and the day
// names of a whole week.
TEST(HttpDateTest, RoundTrips) {
  const int64_t samples[] = {kMin,       -2208988800, -1,         0,           1,          86399,
                             86400,      951782400,   951868800,  k1994,       1709164800, kNow2025,
                             2147483647, 2147483648,  4102444800, 32503680000, kMax};
  for (int64_t t : samples) {
    EXPECT_EQ(ParseHttpDate(FormatHttpDate(t), kNow2025), t) << t;
  }
  for (int64_t t = 0; t < 400 * 366 * 86400LL; t += 86400 * 7 + 3601) {  // ~400 years, stepped
    ASSERT_EQ(ParseHttpDate(FormatHttpDate(t), kNow2025), t) << t;
  }
}

// The one-argument overload reads the system clock for the 50-year rule only.
TEST(HttpDateTest, OneArgumentOverloadParsesFourDigitYears) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), k1994);
  EXPECT_EQ(ParseHttpDate("bogus"), std::nullopt);
}

}  // namespace
}  // namespace torii::cache
