"""The hostile-input catalogue (../shared/BAD-INPUTS.md, issue #18) walked row by row: every
row is claimed by the tests that show torii does what the row owes (integration tests through
the real binary, unit tests, fuzz targets replayed on every run, a benchmark where the row asks
for a figure), or says why torii differs. The walk fails when the catalogue gains a row no test
claims, or when a claimed test disappears or is renamed: the map cannot rot silently."""

import importlib
import os
import re
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CATALOGUE = os.path.join(ROOT, "..", "shared", "BAD-INPUTS.md")

# Row → what shows it. "module.Class.test": an integration test here; "unit:MODULE:Suite.Test"
# (a parameterised one as "Prefix/Suite.Test/param"): a GoogleTest in tests/MODULE/; "fuzz:NAME":
# tests/fuzz/NAME_fuzz.cc and its corpus (replayed by fuzz_test, fuzzed in CI); "bench: ...": a
# bench/ mode; "differs: why": torii deliberately does otherwise.
CLAIMS = {
    'S1': [
        'test_bad_requests.RawRows.test_s1_cl_then_te',
    ],
    'S2': [
        'test_bad_requests.RawRows.test_s2_te_then_cl',
    ],
    'S3': [
        'test_bad_requests.RawRows.test_s3_conflicting_content_length',
    ],
    'S4': [
        'test_bad_requests.RawRows.test_s4_duplicate_content_length',
    ],
    'S5': [
        'test_bad_requests.RawRows.test_s5_malformed_content_length',
    ],
    'S6': [
        'test_bad_requests.RequestFraming.test_s6_leading_zero_content_length_is_reserialised',
    ],
    'S7': [
        'test_bad_requests.RawRows.test_s7_transfer_encoding_variants',
    ],
    'S8': [
        'test_bad_requests.RequestFraming.test_s8_chunked_is_case_insensitive',
    ],
    'S9': [
        'test_bad_requests.RawRows.test_s9_transfer_encoding_obs_fold',
    ],
    'S10': [
        'test_bad_requests.RawRows.test_s10_obs_fold_any_header',
    ],
    'S11': [
        'test_bad_requests.RawRows.test_s11_http10_with_transfer_encoding',
    ],
    'S12': [
        'test_bad_requests.RawRows.test_s12_bare_lf',
    ],
    'S13': [
        'test_bad_requests.RawRows.test_s13_bare_cr_in_value',
    ],
    'S14': [
        'test_bad_requests.RequestFraming.test_s14_nul_in_value',
    ],
    'S15': [
        'test_bad_requests.RawRows.test_s15_ctl_in_value',
    ],
    'S16': [
        'test_bad_requests.RawRows.test_s16_empty_header_name',
    ],
    'S17': [
        'test_bad_requests.RawRows.test_s17_invalid_header_name',
    ],
    'S18': [
        'test_bad_requests.RequestFraming.test_s18_underscore_header_dropped',
    ],
    'S19': [
        'test_bad_requests.RequestFraming.test_s19_long_header_name',
    ],
    'C1': [
        'test_bad_requests.RawRows.test_c1_bad_chunk_size',
    ],
    'C2': [
        'test_bad_requests.ChunkedBodies.test_c2_huge_chunk_size',
        'test_bad_requests.RawRows.test_c2_chunks_over_budget',
    ],
    'C3': [
        'test_bad_requests.RawRows.test_c3_bare_lf_in_chunks',
    ],
    'C4': [
        'test_bad_requests.RawRows.test_c4_chunk_data_without_crlf',
    ],
    'C5': [
        'test_bad_requests.RawRows.test_c5_chunk_spill',
    ],
    'C6': [
        'test_bad_requests.ChunkedBodies.test_c6_chunk_extensions_stripped',
        'test_bad_requests.RawRows.test_c6_bad_chunk_extensions',
    ],
    'C7': [
        'test_bad_requests.ChunkedBodies.test_c7_trailers_dropped',
        'test_bad_requests.ChunkedBodies.test_c7_transfer_encoding_trailer',
    ],
    'R1': [
        'test_bad_requests.RequestLine.test_r1_http09',
    ],
    'R2': [
        'test_bad_requests.RawRows.test_r2_versions',
        'test_bad_requests.RequestLine.test_r2_http12_is_treated_as_11',
    ],
    'R3': [
        'test_bad_requests.RawRows.test_r3_fragment_in_target',
    ],
    'R4': [
        'test_bad_requests.RawRows.test_r4_bad_target_bytes',
    ],
    'R5': [
        'test_bad_requests.RequestLine.test_r5_missing_host',
    ],
    'R6': [
        'test_bad_requests.RawRows.test_r6_bad_host',
    ],
    'R7': [
        'test_bad_requests.RequestLine.test_r7_absolute_form_overrides_host',
        'test_bad_requests.RawRows.test_r7_bad_target_forms',
    ],
    'R8': [
        'test_tls.Termination.test_misdirected_request_421',
    ],
    'R9': [
        'test_bad_requests.RawRows.test_r9_long_request_line',
    ],
    'R10': [
        'test_bad_requests.RawRows.test_r10_header_section_too_large',
    ],
    'R11': [
        'test_bad_requests.RequestLine.test_r11_too_many_headers',
    ],
    'R12': [
        'test_bad_requests.RawRows.test_r12_bad_methods',
    ],
    'P1': [
        'test_proxy.KeepAliveAndPipelining.test_pipelining_in_order',
        'test_proxy.KeepAliveAndPipelining.test_pipelining_with_bodies',
        'test_proxy.KeepAliveAndPipelining.test_pipelining_flood_backpressure',
    ],
    'P2': [
        'test_bad_requests.ConnectionHandling.test_p2_bytes_after_connection_close',
        'test_bad_requests.ConnectionHandling.test_p2_bytes_after_close_while_flushing',
        'test_bad_requests.RawRows.test_p2_http10_close',
    ],
    'P3': [
        'test_bad_requests.ConnectionHandling.test_p3_upgrade_answered_200',
    ],
    'P4': [
        'test_bad_requests.ConnectionHandling.test_p4_expect_100_continue',
        'test_bad_requests.ConnectionHandling.test_p4_expect_then_early_error',
    ],
    'P5': [
        'test_cache.Basics.test_get_with_a_body_is_forwarded_and_the_next_request_gets_its_own_answer',
    ],
    'P6': [
        'test_bad_requests.ConnectionHandling.test_p4_expect_then_early_error',
        'test_bad_requests.ConnectionHandling.test_p6_content_length_over_limit',
        'test_bad_requests.RawRows.test_p6_early_431_with_body',
    ],
    'H1': [
        'test_edge.Rewrites.test_h1_crlf_in_path_stays_encoded',
    ],
    'H2': [
        'unit:http:UpstreamHeadTest.MutatedRequestsNeverSplitHeaderLines',
        'fuzz:h1_request',
    ],
    'H3': [
        'test_edge.ClientIdentity.test_untrusted_peer_cannot_claim_another_client',
        'test_proxy.HeaderRewriting.test_request_hop_by_hop_and_forwarding_headers',
    ],
    'L1': [
        'test_proxy.AccessLog.test_text_format',
    ],
    'K1': [
        'test_cache.Basics.test_host_is_part_of_the_key',
    ],
    'K2': [
        'test_cache.Basics.test_unkeyed_forwarding_headers_cannot_poison',
    ],
    'K3': [
        'test_cache.Basics.test_vary_selects_a_variant_per_header_value',
        'test_cache.Basics.test_vary_star_is_never_stored',
        'test_cache.Basics.test_odd_accept_encoding_normalises_no_bypass_no_crash',
    ],
    'K4': [
        'test_cache.Basics.test_errors_are_stored_only_with_explicit_freshness',
    ],
    'K5': [
        'test_cache.Basics.test_private_no_store_and_set_cookie_are_not_stored',
    ],
    'K6': [
        'test_cache.Basics.test_authorization_is_not_served_from_the_cache',
        'test_cache.Basics.test_private_no_store_and_set_cookie_are_not_stored',
    ],
    'K7': [
        'test_cache.Basics.test_truncated_response_is_never_stored',
    ],
    'K8': [
        'test_cache.Basics.test_head_is_answered_from_a_stored_get_and_never_stored_as_it',
    ],
    'K9': [
        'test_cache.Basics.test_many_ranges_get_the_full_body',
        'test_cache.RangesFromTheStore.test_unsatisfiable_range_is_a_416',
    ],
    'K10': [
        'test_cache.Coalescing.test_a_thousand_concurrent_misses_make_one_origin_request',
    ],
    'Z1': [
        'differs: torii never inflates request bodies (they are streamed as sent), so there is no request-side bomb; response decoding (decompress = true) is bounded by max_decoded: unit:codec:Codings/DecoderTest.StopsZipBombsAtMaxOutput/gzip',
    ],
    'Z2': [
        'test_compression.Codings.test_skip_rules',
        'test_compression.Codings.test_strong_etag_is_weakened_and_vary_merged',
    ],
    'Z3': [
        'test_compression.Codings.test_skip_rules',
    ],
    'Z4': [
        'test_cache.Basics.test_odd_accept_encoding_normalises_no_bypass_no_crash',
        'fuzz:negotiate',
    ],
    'T1': [
        'test_tls.Termination.test_tls12_is_refused_by_default',
        'unit:tls:ServerContextTest.Tls11AlwaysRefused',
    ],
    'T2': [
        'unit:tls:ServerContextTest.WeakCiphersAloneAreRefused',
    ],
    'T3': [
        'unit:tls:ServerContextTest.RenegotiationRefused',
        'unit:tls:SessionTest.KeyUpdateFloodIsCutOff',
    ],
    'T4': [
        'test_tls.Options.test_t4_fallback_scsv_is_refused',
    ],
    'T5': [
        'test_tls.Options.test_t5_early_data_is_not_accepted',
        'test_early_data.EarlyData.test_off_by_default',
        'test_early_data.EarlyData.test_get_in_early_data_is_forwarded_marked',
        'test_early_data.EarlyData.test_post_in_early_data_waits_for_the_handshake',
        'test_early_data.EarlyData.test_425_from_the_backend_is_retried_after_the_handshake',
        'test_early_data.EarlyData.test_replayed_flight_get_once_post_never',
        'unit:tls:EarlyDataTest.AcceptedOnceThenRefused',
    ],
    'T6': [
        'unit:tls:TicketResumptionTest.NoResumptionAcrossCertificates',
    ],
    'T7': [
        'test_tls.Termination.test_resumption_across_reconnects_and_workers',
        'test_tls.Options.test_processes_sharing_a_key_file_resume_each_other',
    ],
    'T8': [
        'test_tls.Termination.test_plain_http_gets_400_and_a_close',
        'test_tls.Termination.test_garbage_is_closed_without_leaking',
        'test_tls.Termination.test_stalled_handshake_is_closed_at_handshake_timeout',
    ],
    'T9': [
        'test_tls.Options.test_truncated_or_corrupted_body_aborts_and_never_pools_the_upstream',
    ],
    'D1': [
        'test_bad_requests.Timeouts.test_header_timeout',
        'test_bad_requests.Timeouts.test_slowloris',
    ],
    'D2': [
        'test_bad_requests.Timeouts.test_body_timeout',
        'test_resource_faults.SlowPost.test_d2_slow_post_body_timeout',
        'test_resource_faults.SlowBodyRate.test_d2_body_below_min_rate_is_cut_while_a_fast_one_passes',
    ],
    'D3': [
        'test_resource_faults.SlowRead.test_d3_e7_slow_read_send_timeout',
    ],
    'D4': [
        'test_bad_requests.Timeouts.test_idle_keepalive_closed',
        'test_bad_requests.Timeouts.test_silent_connection_closed',
    ],
    'D5': [
        'test_resource_faults.ConnectionFlood.test_d5_flood_over_max_connections',
    ],
    'D6': [
        'test_ratelimit.RateLimits.test_two_clients_are_limited_independently',
        'test_ratelimit.RateLimits.test_burst_above_the_limit_gets_exactly_the_expected_429s',
    ],
    'D7': [
        'unit:ratelimit:RateTableTest.FloodOfDistinctKeysStaysBounded',
        'unit:ratelimit:RateTableTest.FloodDoesNotEvictAnExhaustedKey',
    ],
    'D8': [
        'test_bad_requests.Timeouts.test_keepalive_requests_cap',
        'test_bad_requests.Timeouts.test_keepalive_cap_drops_late_request',
    ],
    'B1': [
        'test_backend_faults.DeadBackends.test_one_origin_down',
        'test_backend_faults.DeadBackends.test_all_origins_down',
    ],
    'B2': [
        'test_backend_faults.DeadBackends.test_all_origins_down',
    ],
    'B3': [
        'test_backend_faults.Faults.test_b3_response_timeout',
        'test_backend_faults.Faults.test_b3_slow_backend_within_timeout',
    ],
    'B4': [
        'test_backend_faults.Faults.test_b4_die_mid_body',
    ],
    'B5': [
        'test_backend_faults.KeepAliveRace.test_b5_origin_keepalive_timeout',
    ],
    'B6': [
        'test_backend_faults.Faults.test_b6_garbage',
    ],
    'B7': [
        'test_backend_faults.Faults.test_b7_bad_response_framing',
    ],
    'B8': [
        'test_backend_faults.Faults.test_b8_bodiless_status_with_content_length',
    ],
    'B9': [
        'test_backend_faults.Faults.test_b9_extra_bytes_after_response',
    ],
    'B10': [
        'test_backend_faults.Faults.test_b10_interim_responses',
    ],
    'B11': [
        'test_backend_faults.Faults.test_b11_no_length',
    ],
    'B12': [
        'test_balancing.Health.test_flapping_checks_do_not_flap_traffic',
        'test_balancing.Health.test_clients_cannot_poison_passive_health_with_500s',
    ],
    'B13': [
        'test_balancing.LeastConnCounters.test_counts_return_to_zero_after_chaos',
    ],
    'B14': [
        'test_resource_faults.ConnectHang.test_b14_connect_timeout_next_backend',
    ],
    'B15': [
        'test_backend_faults.Faults.test_b15_partial_body_not_pooled',
    ],
    'E1': [
        'test_resource_faults.FdExhaustion.test_e1_emfile_pauses_accepting',
        'test_resource_faults.FdExhaustion.'
        'test_e1_keepalive_clients_served_under_load_while_accepting_fails',
    ],
    'E2': [
        'bench: bash bench/run.sh idle (bytes per idle connection, gradual and BATCH=N bursts)',
        'test_proxy.IdleMemory.test_e2_idle_connections_hold_no_receive_buffer',
    ],
    'E3': [
        'unit:core:WorkerTest.TinyRingsLoseNoCompletion',
    ],
    'E4': [
        'unit:core:WorkerTest.TinyRingsLoseNoCompletion',
    ],
    'E5': [
        'unit:core:WorkerTest.TinyBufferRingDeliversEveryByte',
    ],
    'E6': [
        'test_lifecycle.ClientResets.test_reset_storm',
    ],
    'E7': [
        'test_resource_faults.SlowRead.test_d3_e7_slow_read_send_timeout',
    ],
    'E8': [
        'test_reload.Reload.test_reloads_under_load_fail_no_request',
    ],
    'E9': [
        'fuzz:dns_message',
        'unit:dns:DnsMessage.CompressionPointerLoopAndForward',
        'unit:dns:DnsMessage.TruncatedAtEveryOffset',
        'unit:dns:DnsMessage.MessageSizeLimits',
        'unit:dns:ResolverTest.SilentServerTimesOutWithinTimeoutTimesAttempts',
        'test_dns.Resolve.test_addresses_added_and_removed_under_load_fail_no_request',
        'test_dns.Resolve.test_dns_server_down_keeps_the_last_good_set',
    ],
}


def catalogue_rows():
    with open(CATALOGUE) as f:
        return [m.group(1) for m in re.finditer(r"^\| ([A-Z][0-9]+) \|", f.read(), re.M)]


def unit_test_exists(module, name):
    """`Suite.Test`, or `Prefix/Suite.Test/param` for TEST_P, in tests/MODULE/*.cc."""
    m = re.fullmatch(r"(?:\w+/)?(\w+)\.(\w+)(?:/\w+)?", name)
    if not m:
        return False
    suite, test = m.groups()
    pattern = re.compile(r"^TEST(?:_F|_P)?\(\s*" + suite + r"\s*,\s*" + test + r"\s*\)", re.M)
    folder = os.path.join(ROOT, "tests", module)
    for file in os.listdir(folder):
        if file.endswith(".cc"):
            with open(os.path.join(folder, file)) as f:
                if pattern.search(f.read()):
                    return True
    return False


class Catalogue(unittest.TestCase):
    @unittest.skipUnless(os.path.exists(CATALOGUE), "../shared/BAD-INPUTS.md is not beside the repo")
    def test_every_row_is_claimed(self):
        rows = catalogue_rows()
        self.assertEqual(len(rows), len(set(rows)), "duplicate row ids in the catalogue")
        for row in rows:
            with self.subTest(row=row):
                self.assertIn(row, CLAIMS, f"{row} is in BAD-INPUTS.md but no test claims it")
        for row in CLAIMS:
            with self.subTest(row=row):
                self.assertIn(row, rows, f"{row} is claimed but not in the catalogue")

    def test_every_claim_resolves(self):
        for row, claims in CLAIMS.items():
            for claim in claims:
                with self.subTest(row=row, claim=claim):
                    if claim.startswith("unit:"):
                        _, module, name = claim.split(":", 2)
                        self.assertTrue(unit_test_exists(module, name), claim)
                    elif claim.startswith("fuzz:"):
                        name = claim[5:]
                        self.assertTrue(os.path.exists(
                            os.path.join(ROOT, "tests", "fuzz", f"{name}_fuzz.cc")), claim)
                        self.assertTrue(os.path.isdir(
                            os.path.join(ROOT, "tests", "fuzz", "corpus", name)), claim)
                    elif claim.startswith("bench:"):
                        mode = re.search(r"bench/run\.sh (\w+)", claim).group(1)
                        with open(os.path.join(ROOT, "bench", "run.sh")) as f:
                            self.assertRegex(f.read(), r"\n  " + mode + r"\) run_")
                    elif claim.startswith("differs:"):
                        self.assertGreater(len(claim), 40, "say why")
                    else:
                        module, cls, test = claim.split(".")
                        self.assertTrue(test.startswith("test_"), claim)
                        obj = getattr(importlib.import_module(module), cls)
                        self.assertTrue(callable(getattr(obj, test, None)), claim)


if __name__ == "__main__":
    unittest.main()
