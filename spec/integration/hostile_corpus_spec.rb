# frozen_string_literal: true

require "base64"
require "digest"
require "openssl"
require "ostruct"
require "redcarpet"
require "securerandom"
require "pathname"
require "zlib"

# Issue 10, "A hostile corpus": one queue of hostile job names beside a few good shares, discovered
# once per run as the member mtmember, then judged case by case from the table below. Every case
# asserts: (a) no exception out of MultiTenant.discover; (b) no file written outside the data root
# (every path the discovery process and its children wrote, traced with strace -f); (c) every session
# file the run wrote parses as OOD parses it (the db file as JSON with OOD's types, connection.yml with
# YAML.safe_load into a Hash of strings); (d) exactly one logged reason naming the job, or none for
# what is not an error by design; (e) the good shares of the same run are still delivered.
#
# Where cases run:
#   mtcluster  real Slurm: a job of mtowner (--wckey=multitenant) renamed with scontrol as its owner
#   mtbeta     the same on the second real cluster (a second discovery run): sealed content cases. Each
#              run logs at most MAX_ERRORS (50) lines, so the hostile names are spread over two queues.
#   refused    real Slurm refuses the name (scontrol exits 1): the job keeps the name it had
#   recorded   what the real scheduler cannot carry (over 1024 bytes, NUL, forged columns, 10 000
#              jobs): a squeue-shaped executable prints a recorded answer, wired as OOD allows, through
#              the clusters.d entry's job.bin_overrides
#   symlink    a symlink planted in a data root of its own, discovered over the mtcluster queue
module HostileCorpus
  # Seals any plaintext as a v2 name with a real key, as any holder of the group's key can: the
  # envelope (docs/envelope.md) written with OpenSSL, so content the sealing API refuses can be sealed.
  module RawSeal
    module_function

    # [key bytes, key id bytes] of a key file's first (sealing) key.
    def key(file)
      line = File.readlines(file).map(&:strip).find { |l| l.start_with?("mtk1:") }
      _, id, b64 = line.split(":")
      [Base64.urlsafe_decode64(b64 + ("=" * ((4 - (b64.size % 4)) % 4))), [id].pack("H*")]
    end

    def random_key
      k = SecureRandom.random_bytes(32)
      [k, OpenSSL::Digest::SHA256.digest("multitenant key id" + k)[0, 4]]
    end

    def hkdf(key, info) = OpenSSL::KDF.hkdf(key, salt: "multitenant v1", info: info, length: 32, hash: "SHA256")

    def seal(plaintext, key:, job_id:, cluster:, owner: "mtowner", group: "mtclass", prefix: "mt", restarts: 0, padding: true)
      k, kid = key
      cipher = OpenSSL::Cipher.new("aes-256-cbc").encrypt
      cipher.key = hkdf(k, "enc")
      iv = SecureRandom.random_bytes(16)
      cipher.iv = iv
      cipher.padding = padding ? 1 : 0
      ct = (plaintext.empty? ? "".b : cipher.update(plaintext.b)) + cipher.final
      ad = ["multitenant", "2", kid, prefix, group, job_id.to_s, owner, cluster, restarts.to_s, iv + ct]
           .map { |f| [f.bytesize].pack("n") + f.b }.join
      tag = OpenSSL::HMAC.digest("SHA256", hkdf(k, "mac"), ad)[0, 16]
      "#{prefix}|#{group}|2.#{Base64.urlsafe_encode64(kid + iv + ct + tag, padding: false)}"
    end

    def json(text) = "\x00".b + text.b
    def deflated(text) = "\x01".b + Zlib::Deflate.new(9, -15).deflate(text.b, Zlib::FINISH)
  end

  # The case table. outcome: :delivered (a spec and, for method card, a card), :form (a spec, no card),
  # :none (nothing, and no error: by design), :error (nothing, and exactly one reason naming the job,
  # matching `reason`). name: builds the job name (instance_exec'd with the job). Cases whose outcome
  # is not plain add spec:/card:.
  def self.c(name, on, outcome, reason = nil, **opts, &build) = { name: name, on: on, outcome: outcome, reason: reason, build: build, **opts }

  SEAL = /seal does not verify/
  UNKNOWN_KEY = /no key with id \h{8} for group mtclass is readable here/

  CASES = [
    # ---- good shares: always delivered (e) ----------------------------------------------------------
    c(:good_card_a, :mtcluster, :delivered) { seal(msg("app" => "Good A")) },
    c(:good_card_b, :mtcluster, :delivered) { seal(msg("app" => "Good B", "delivery" => "sys/multitenant-delivery_debug")) },
    c(:good_form, :mtcluster, :form) { seal(msg("app" => "Good form", "method" => "form")) },
    c(:good_beta, :mtbeta, :delivered) { seal(msg("app" => "Good beta")) },
    c(:good_beta_form, :mtbeta, :form) { seal(msg("app" => "Good beta form", "method" => "form")) },

    # ---- not errors by design ------------------------------------------------------------------------
    c(:plain_unrenamed, :mtcluster, :none) { "plain" },
    c(:empty_name, :mtcluster, :none) { "" },
    c(:plain_control_chars, :mtcluster, :none) { "a\x01\e[31mred\e[0m" },
    c(:plain_non_utf8, :mtcluster, :none) { "\xff\xfe plain \x80".b },
    c(:share_for_another_group, :mtcluster, :none) { RawSeal.seal(RawSeal.json(JSON.generate(raw_msg)), key: RawSeal.random_key, job_id: id, cluster: cluster, group: "root") },
    c(:edited_group_one_char, :mtcluster, :none, why: "mtclass -> mtclasr: a group the viewer is not in, as any other group's share") do
      seal(msg).sub("|mtclass|", "|mtclasr|")
    end,
    c(:expired, :mtcluster, :none) { seal(msg("expires_at" => Time.now.to_i - 60)) },
    c(:allow_list_names_another, :mtcluster, :none) { seal(msg("allow" => ["mtprimary"])) },
    c(:newline_forged_record_without_wckey, :mtcluster, :none, wckey: false,
                                                               why: "a job without the WCKey is never listed, whatever its name forges") do
      "x\n#{case_job(:good_card_a).id}|mtowner|multitenant|mtcluster|0|#{node}|#{case_name(:good_card_a)}"
    end,

    # ---- forged, edited (one character flipped in each part), moved, replayed -------------------------
    c(:forged_random, :mtcluster, :error, UNKNOWN_KEY) { "mt|mtclass|2.#{b64(SecureRandom.random_bytes(4 + 16 + 48 + 16))}" },
    c(:forged_with_real_key_id, :mtcluster, :error, SEAL) { "mt|mtclass|2.#{b64(RawSeal.key(key_file)[1] + SecureRandom.random_bytes(16 + 48 + 16))}" },
    c(:edited_prefix, :mtcluster, :error, SEAL) { seal(msg).sub(/\Amt\|/, "mu|") },
    c(:edited_separator, :mtcluster, :error, /malformed share: expected <prefix>\|<group>\|<payload>/) { seal(msg).sub("|2.", "!2.") },
    c(:edited_version_to_1, :mtcluster, :error, SEAL) { seal(msg).sub("|2.", "|1.") },
    c(:edited_version_to_3, :mtcluster, :error, /share format version "3" is not supported/) { seal(msg).sub("|2.", "|3.") },
    c(:edited_key_id, :mtcluster, :error, UNKNOWN_KEY) { flip(seal(msg), 0) },
    c(:edited_iv, :mtcluster, :error, SEAL) { flip(seal(msg), 12) },
    c(:edited_ciphertext, :mtcluster, :error, SEAL) { flip(seal(msg), 40) },
    c(:edited_tag, :mtcluster, :error, SEAL) { name = seal(msg); flip(name, name.size - 13 - 8) },
    c(:moved_from_another_job, :mtcluster, :error, SEAL) { seal(msg, job_id: id.to_i + 100_000) },
    c(:replayed_on_a_second_job, :mtcluster, :error, SEAL) { case_name(:good_card_a) },
    c(:wrong_key, :mtcluster, :error, UNKNOWN_KEY) { RawSeal.seal(RawSeal.json(JSON.generate(raw_msg)), key: RawSeal.random_key, job_id: id, cluster: cluster) },
    c(:sealed_for_another_owner, :mtcluster, :error, SEAL) { seal(msg, owner: "mtmember") },
    c(:sealed_for_another_cluster, :mtcluster, :error, SEAL) { seal(msg, cluster: "mtbeta") },
    c(:sealed_for_a_later_run, :mtcluster, :error, SEAL) { seal(msg, restarts: 3) },

    # ---- truncated at several places -----------------------------------------------------------------
    c(:truncated_after_prefix, :mtcluster, :error, /expected <prefix>\|<group>\|<payload>/) { seal(msg)[0, 3] },
    c(:truncated_after_group, :mtcluster, :error, /payload is neither a versioned envelope nor legacy base64/) { seal(msg)[0, 11] },
    c(:truncated_after_version, :mtcluster, :error, /v2 payload is truncated/) { seal(msg)[0, 13] },
    c(:truncated_in_key_id, :mtcluster, :error, /v2 payload is truncated/) { seal(msg)[0, 13 + 5] },
    c(:truncated_in_iv, :mtcluster, :error, /v2 payload has an impossible length \(15 bytes\)/) { seal(msg)[0, 13 + 20] },
    c(:truncated_in_ciphertext, :mtcluster, :error, /v2 payload has an impossible length/) { seal(msg)[0, 13 + 60] },
    c(:truncated_by_one_character, :mtcluster, :error, /v2 payload (is not base64url|has an impossible length)/) { seal(msg)[0..-2] },
    c(:truncated_by_three_whole_blocks, :mtcluster, :error, SEAL, why: "48 bytes off the end: a possible length, so the tag decides") do
      prefix, payload = seal(msg).split("|2.")
      "#{prefix}|2.#{b64(Base64.urlsafe_decode64(payload + ("=" * ((4 - (payload.size % 4)) % 4)))[0...-48])}"
    end,

    # ---- non-UTF-8, newlines, odd bytes ---------------------------------------------------------------
    c(:non_utf8_in_payload, :mtcluster, :error, /v2 payload is not base64url/) { seal(msg).b.sub("|2.".b, "|2.\xff\xfe\x80".b) },
    c(:non_utf8_in_group, :mtcluster, :error, /group .* must be a POSIX group name/) { seal(msg).b.sub("|mtclass|".b, "|mt\xffclass|".b) },
    c(:newline_forged_record, :mtcluster, :error, /more than three '\|'-separated fields/, why: "the forged record is part of this job's name, never a job") do
      "x\n#{case_job(:good_card_a).id}|mtowner|multitenant|mtcluster|0|#{node}|#{case_name(:good_card_a)}"
    end,
    c(:newline_after_a_good_name, :mtcluster, :error, /v2 payload is not base64url/) { "#{seal(msg)}\n" },
    c(:tab_and_carriage_return, :mtcluster, :error, /payload has no version marker|not base64url/) { "mt|mtclass|\t2.abc\r" },
    c(:only_separators, :mtcluster, :error, /more than three '\|'-separated fields/) { "|||" },
    c(:unicode_lookalike_prefix, :mtcluster, :error, /prefix "мт" must be/) { seal(msg).sub(/\Amt/, "мт") },
    c(:legacy_format_not_enabled, :mtcluster, :error, /legacy \(insecure, unauthenticated\) format and legacy decoding is not enabled/,
      or_summary: /\A1 running job\(s\) publish in the first implementation's format, which is not read here \(mtowner: 1\)/) do
      "sys/dashboard|mtclass|#{Base64.strict_encode64(SecureRandom.random_bytes(48))}"
    end,
    c(:host_not_a_node_of_the_job, :mtcluster, :error, /host "evil\.example\.com" is not a node of job \d+/) { seal(msg("connection" => { "host" => "evil.example.com" })) },

    # ---- Slurm's 1024 ---------------------------------------------------------------------------------
    c(:exactly_1024_valid, :mtcluster, :delivered, bytes: 1024) { sized_seal(1024) },
    c(:exactly_1024_garbage, :mtcluster, :error, /no key with id 00000000/, bytes: 1024) { "mt|mtclass|2.#{"A" * 1011}" },
    c(:over_1024_refused_by_slurm, :refused, :none, why: "scontrol: too long; the job keeps its name") { "mt|mtclass|2.#{"A" * 1012}" },
    c(:over_1024_bytes_in_513_characters_refused, :refused, :none) { "é" * 513 },
    c(:five_thousand_refused_by_slurm, :refused, :none) { "mt|mtclass|2.#{"B" * 4987}" },

    # ---- HTML and JavaScript in every field a publisher chooses ----------------------------------------
    c(:html_in_every_field_default_card, :mtcluster, :delivered, render: true) { seal(html_msg("sys/multitenant-delivery_default")) },
    c(:html_in_every_field_debug_card, :mtcluster, :delivered, render: true) { seal(html_msg("sys/multitenant-delivery_debug")) },
    c(:html_in_every_field_content_card, :mtcluster, :delivered, render: true) do
      seal(html_msg("sys/multitenant-delivery_content", "content_format" => "html"))
    end,
    c(:javascript_url_and_attribute_breakouts, :mtcluster, :delivered, render: true) do
      seal(msg("app" => %("><img src=x onerror=alert(1)>), "connection" => { "host" => node, "url" => "javascript:alert(document.cookie)",
                                                                              "ollama_url" => %(http://#{node}:1/"><script>alert(1)</script>),
                                                                              "note" => "    <script>indented</script>\n\n<script>x</script>" }))
    end,

    # ---- sealed content (the real key, content the API refuses): on mtbeta -----------------------------
    c(:compression_bomb, :mtbeta, :error, /content inflates beyond 16384 bytes/, why: "300 KB of 'a' deflated into one name") do
      raw(RawSeal.deflated("a" * 300_000))
    end,
    c(:valid_message_inflating_over_16k, :mtbeta, :error, /content inflates beyond 16384 bytes/,
                                                       why: "20 values of 1000 characters: every field valid, the whole too big") do
      raw(RawSeal.deflated(JSON.generate(raw_msg("c" => (1..20).to_h { |i| ["v#{i}", "a" * 1000] }))))
    end,
    c(:huge_but_within_bounds, :mtbeta, :delivered, why: "15 values of 1000 characters (15 KB) fit the 16 KiB bound") do
      raw(RawSeal.deflated(JSON.generate(raw_msg("c" => (1..15).to_h { |i| ["v#{i}", (i % 10).to_s * 1000] }))))
    end,
    c(:deeply_nested_json, :mtbeta, :error, /sealed content: invalid type: sequence/) { raw(RawSeal.deflated(("[" * 8000) + ("]" * 8000))) },
    c(:deeply_nested_connection, :mtbeta, :error, /sealed content: invalid type/) do
      nested = "\"c\":{\"x\":#{"[" * 5000}#{"]" * 5000},"
      raw(RawSeal.deflated(JSON.generate(raw_msg).sub('"c":{', nested)))
    end,
    c(:not_json, :mtbeta, :error, /sealed content: key must be a string/) { raw(RawSeal.json("{not json")) },
    c(:json_not_an_object, :mtbeta, :error, /sealed content: invalid type: string/) { raw(RawSeal.json('"a string"')) },
    c(:unknown_field, :mtbeta, :error, /sealed content: unknown field `z`/) { raw(RawSeal.json(JSON.generate(raw_msg("z" => 1)))) },
    c(:duplicate_field, :mtbeta, :error, /sealed content: duplicate field `i`/) { raw(RawSeal.json(JSON.generate(raw_msg).sub("{", '{"i":"other",'))) },
    c(:unknown_content_flag, :mtbeta, :error, /unknown content flag 2/) { raw("\x02".b + JSON.generate(raw_msg)) },
    c(:bad_padding_under_a_valid_mac, :mtbeta, :error, /bad padding under a valid MAC/) { raw("\x00".b + ("z" * 31), padding: false) },
    c(:empty_plaintext, :mtbeta, :error, /empty plaintext/) { raw("") },
    c(:lone_surrogate_in_json, :mtbeta, :error, /sealed content: (lone leading surrogate|unexpected end of hex escape)/) { raw(RawSeal.json(JSON.generate(raw_msg).sub("Hostile") { "\\ud800" })) },
    c(:session_id_traversal, :mtbeta, :error, /session id "..\/..\/..\/..\/etc\/cron.d\/x" must be/) { raw_field("i" => "../../../../etc/cron.d/x") },
    c(:session_id_slash, :mtbeta, :error, /session id "a\/b" must be/) { raw_field("i" => "a/b") },
    c(:session_id_nul, :mtbeta, :error, /session id "a\\0b" must be/) { raw_field("i" => "a\u0000b") },
    c(:session_id_unicode, :mtbeta, :error, /session id "ｓｅｓｓ" must be/) { raw_field("i" => "ｓｅｓｓ") },
    c(:delivery_traversal, :mtbeta, :error, /delivery token "sys\/..\/..\/..\/..\/tmp\/x" must be/) { raw_field("d" => "sys/../../../../tmp/x") },
    c(:delivery_absolute, :mtbeta, :error, /delivery token "\/etc\/passwd" must be/) { raw_field("d" => "/etc/passwd") },
    c(:delivery_unicode, :mtbeta, :error, /delivery token "sys\/app\\u\{202e\}" must be|delivery token "sys\/app.*" must be/) { raw_field("d" => "sys/app\u202E") },
    c(:delivery_of_another_user, :mtbeta, :form, /usr\/mtowner\/evil is not allowed for cards/, why: "a valid token no card may name: still a form choice, and one reason") do
      raw_field("d" => "usr/mtowner/evil")
    end,
    c(:group_traversal, :mtbeta, :error, /group "..\/mtclass" must be a POSIX group name/) { seal(msg).sub("|mtclass|", "|../mtclass|") },
    c(:group_unicode_lookalike, :mtbeta, :error, /group "mtсlass" must be a POSIX group name/) { seal(msg).sub("|mtclass|", "|mtсlass|") },
    c(:connection_key_traversal, :mtbeta, :error, /connection key "..\/x" must be/) { raw_conn("../x" => "v") },
    c(:connection_key_slash, :mtbeta, :error, /connection key "a\/b" must be/) { raw_conn("a/b" => "v") },
    c(:connection_key_nul, :mtbeta, :error, /connection key "a\\0" must be/) { raw_conn("a\u0000" => "v") },
    c(:connection_key_unicode, :mtbeta, :error, /connection key "kéy" must be/) { raw_conn("kéy" => "v") },
    c(:connection_key_html, :mtbeta, :error, /connection key "<script>" must be/) { raw_conn("<script>" => "v") },
    c(:connection_key_jobid_spoof, :mtbeta, :error, /connection key "jobid" must be/) { raw_conn("jobid" => "1") },
    c(:connection_key_owner_spoof, :mtbeta, :error, /connection key "mt_owner" must be/) { raw_conn("mt_owner" => "root") },
    c(:connection_key_ruby_method, :mtbeta, :error, /connection key "instance_eval" is the name of a Ruby method/) { raw_conn("instance_eval" => "v") },
    c(:connection_value_nul, :mtbeta, :error, /connection value "note" must be at most 1024 characters with no NUL/) { raw_conn("note" => "a\u0000b") },
    c(:connection_value_too_long, :mtbeta, :error, /connection value "note" must be at most 1024/) { raw_conn("note" => "n" * 1025) },
    c(:app_right_to_left_override, :mtbeta, :error, /app name must not contain invisible or direction-changing characters \(U\+202E at character 5\)/) do
      raw_field("a" => "evil\u202Etxt.exe")
    end,
    c(:app_newline, :mtbeta, :error, /app name must not contain whitespace other than the space \(U\+000A/) { raw_field("a" => "a\nb") },
    c(:app_nul, :mtbeta, :error, /app name must not contain control characters \(U\+0000/) { raw_field("a" => "a\u0000") },
    c(:allow_list_traversal, :mtbeta, :error, /user "..\/root" is not a valid login name/) { raw_field("u" => ["../root"]) },
    c(:allow_list_empty, :mtbeta, :error, /allow-list is empty/) { raw_field("u" => []) },
    c(:expiry_past_year_9999, :mtbeta, :error, /expiry must be before the year 10000/) { raw_field("x" => 253_402_300_800) },
    c(:method_unknown, :mtbeta, :error, /unknown variant `both`/) { raw_field("m" => "both") },

    # ---- what the real scheduler cannot carry: recorded squeue output ---------------------------------
    c(:rec_good, :recorded, :delivered) { seal(msg("app" => "Recorded good")) },
    c(:rec_name_of_1025_bytes, :recorded, :error, /name is 1025 bytes, over Slurm's 1024/) { "mt|mtclass|2.#{"A" * 1012}" },
    c(:rec_name_of_100_000_bytes, :recorded, :error, /name is 100000 bytes, over Slurm's 1024/) { "mt|mtclass|2.#{"A" * 99_987}" },
    c(:rec_nul_in_name, :recorded, :error, /v2 payload is not base64url/) { seal(msg).sub("|2.", "|2.\u0000") },
    c(:rec_owner_not_a_member, :recorded, :error, /the owner is not a member of group mtclass/, owner: "mtoutsider") { seal(msg, owner: "mtoutsider") },
    c(:rec_owner_unknown, :recorded, :error, /owner mtghost has no passwd entry here; its share stays as it was/, owner: "mtghost") do
      seal(msg, owner: "mtghost")
    end,
    c(:rec_hostile_node_list, :recorded, :error, /host "mtrec1" cannot be checked/, nodes: "mtrec[1-99999999999999999999]") { seal(msg) },
    c(:rec_name_holding_the_query_separator, :recorded, :none, sep: true, why: "the record has a field too many: dropped, nothing shifted") { seal(msg) },
    c(:rec_defaulted_wckey, :recorded, :none, wckey: "*multitenant") { seal(msg) },
    c(:rec_other_wckey_case, :recorded, :none, wckey: "MultiTenant") { seal(msg) },
    c(:rec_job_id_not_numeric, :recorded, :none, id: "12a") { "plain" },
    c(:rec_another_cluster_in_the_answer, :recorded, :none, cluster: "mtcluster") { seal(msg) },
    c(:rec_duplicate_job_id, :recorded, :none, dup_of: :rec_good, why: "a job id counts once: the first record") { "mt|mtclass|2.#{"C" * 200}" },
    c(:rec_ten_thousand_jobs, :recorded, :none, flood: true)
  ].freeze

  SYMLINKS = [
    { name: :symlink_at_batch_connect_db, at: "batch_connect/db", kind: :dir, reason: %r{batch_connect/db: your symlink leads to a directory that is owned by uid 0} },
    { name: :symlink_at_an_output_dir, at: :good_card_a_output, kind: :dir, reason: /your symlink leads to a directory that is owned by uid 0/ },
    { name: :symlink_at_the_manifest, at: "multitenant/cards.json", kind: :file, reason: %r{multitenant/cards\.json} },
    { name: :symlink_at_the_manifest_dir, at: "multitenant", kind: :dir, reason: %r{multitenant: your symlink leads to a directory that is owned by uid 0} }
  ].freeze

  Job = Struct.new(:case, :id, :cluster, :node, :name, keyword_init: true)

  # ------------------------------------------------------------------------------------------ helpers
  def b64(bytes) = Base64.urlsafe_encode64(bytes, padding: false)

  # The message a good share carries, in Envelope.seal's words.
  def msg(extra = {})
    conn = { "host" => @job.node, "note" => "plain" }
    { "session_id" => "s#{@job.id}", "app" => "Hostile", "method" => "card", "delivery" => "sys/multitenant-delivery_default",
      "connection" => conn }.merge(extra)
  end

  # The same on the wire (one-letter keys), for RawSeal.
  def raw_msg(extra = {})
    { "i" => "s#{@job.id}", "a" => "Hostile", "m" => "card", "d" => "sys/multitenant-delivery_default", "c" => { "host" => @job.node } }.merge(extra)
  end

  def id = @job.id
  def cluster = @job.cluster
  def node = @job.node
  def key_file = File.join(key_dir, "mtclass.key")
  def sealing_key = (@sealing_key ||= MultiTenant::KeyDir.new(key_dir).sealing_key("mtclass"))

  def seal(message, job_id: @job.id, owner: "mtowner", cluster: @job.cluster, restarts: 0, prefix: "mt")
    MultiTenant::Envelope.seal(message, key: sealing_key, group: "mtclass", job_id: job_id, owner: owner, cluster: cluster,
                                        restarts: restarts, prefix: prefix)
  end

  def raw(plaintext, padding: true) = RawSeal.seal(plaintext, key: RawSeal.key(key_file), job_id: id, cluster: cluster, padding: padding)
  # As the sealer chooses: deflated when that is shorter.
  def raw_field(extra)
    json = JSON.generate(raw_msg(extra))
    raw([RawSeal.json(json), RawSeal.deflated(json)].min_by(&:bytesize))
  end
  def raw_conn(conn) = raw_field("c" => { "host" => node }.merge(conn))

  # One base64url character of the payload (counted from its first) replaced by another.
  def flip(name, at)
    i = name.index("|2.") + 3 + at
    name.dup.tap { |n| n[i] = n[i] == "A" ? "B" : "A" }
  end

  HTML = %(<script>alert("x")</script><img src=x onerror=alert(1)>)
  def html_msg(delivery, extra = {})
    msg("app" => "#{HTML[0, 60]}</textarea>", "delivery" => delivery,
        "connection" => { "host" => node, "note" => HTML, "url" => "http://#{node}:8080/\"><script>alert(2)</script>", "content" => HTML,
                          "db_name" => HTML, "ollama_model" => HTML }.merge(extra))
  end

  # A valid share whose name is exactly `bytes` long: a value sized to a block, then a longer prefix.
  def sized_seal(bytes)
    (300..1000).step(3) do |n|
      m = msg("app" => "Exactly #{bytes}", "connection" => { "host" => node, "note" => SecureRandom.alphanumeric(n) })
      base = seal(m)
      extra = bytes - base.bytesize
      return seal(m, prefix: "mt#{"x" * extra}") if extra.between?(0, 62)
    end
    raise "no size fits"
  end

  def case_job(name) = @jobs.fetch(name)
  def case_name(name) = @jobs.fetch(name).name
  def cases_on(*where) = CASES.select { |k| where.include?(k[:on]) }

  # -------------------------------------------------------------------------------- the real queue
  def submit(kase, cluster)
    wck = kase.fetch(:wckey, true) ? ["--wckey=multitenant"] : []
    m = cluster == "mtbeta" ? ["-M", "mtbeta"] : []
    out, err, = run_as("mtowner", "sbatch", "--parsable", *m, *wck, "-J", "plain", "-o", "/dev/null", "--chdir", lab, "--wrap", "sleep 600")
    jid = out.strip.split(";").first.to_s
    raise "sbatch failed: #{err}" unless jid.match?(/\A\d+\z/)

    (@submitted[cluster] ||= []) << jid
    jid
  end

  # {job id => name bytes} of running jobs on `cluster`, read past any name's newlines.
  def names_on(cluster, ids)
    sep = "@S#{SecureRandom.hex(8)}@"
    term = "@T#{SecureRandom.hex(8)}@"
    out, = Open3.capture2("squeue", "-M", cluster, "-h", "--all", "-t", "R", "-j", ids.join(","), "-O", "JobID:#{sep},Name:#{term}", binmode: true)
    out.b.split("#{term}\n".b).to_h { |r| r.sub(/\ACLUSTER: [^\n]*\n/n, "").split(sep.b, 2) }
  end

  def rename(job, name)
    run_as("mtowner", "scontrol", "-M", job.cluster, "update", "JobId=#{job.id}", "JobName=#{name}")
  end

  # --------------------------------------------------------------------------------------- discovery
  WRITE_CALLS = /\A\d+\s+(open|openat|creat|mkdir|mkdirat|rename|renameat2?|unlink|unlinkat|rmdir|symlink|symlinkat|link|linkat|
                 chmod|fchmod|fchmodat|chown|fchown|fchownat|lchown|truncate|ftruncate|utimensat)\(/x

  # Every path a traced process changed (strace -f -y: descriptors are shown with their paths).
  def written_paths(trace)
    File.binread(trace).force_encoding("UTF-8").scrub.lines.filter_map do |line|
      next unless (call = line[WRITE_CALLS, 1])
      # A call another thread interrupted ("<unfinished ...>") is judged by its arguments alone.
      next if line.match?(/\) = -1 /)
      next if call.start_with?("open") && !line.match?(/O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/)

      if (call.start_with?("open") || call == "creat") && !line.include?("<unfinished ...>")
        line[/= \d+<([^>]*)>\s*\z/, 1]
      elsif call.start_with?("f") && !call.end_with?("at")
        line[/\(\d+<([^>]*)>/, 1]
      else
        line.scan(/(?:AT_FDCWD|\d+)<([^>]*)>, "([^"]*)"/).map { |dir, n| n.start_with?("/") ? n : File.join(dir, n) } +
          line.scan(/\A\d+\s+\w+\("(\/[^"]*)"/).flatten
      end
    end.flatten.compact.uniq
  end

  # MultiTenant.discover (the one that never raises) as mtmember over `clusters`, traced; the result,
  # its log lines, and every path it wrote.
  def traced_discover(root, clusters:, clusters_dir: self.clusters_dir)
    script = <<~RUBY
      require "multitenant"; require "json"
      config = MultiTenant::Config.new(key_dir: #{key_dir.inspect}, clusters: #{clusters.inspect}, clusters_dir: #{clusters_dir.inspect},
                                       host_domains: "cluster.example.edu")
      t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      begin
        specs = MultiTenant.discover(dataroot: #{root.inspect}, config: config)
        raised = nil
      rescue Exception => e
        raised = "\#{e.class}: \#{e.message}"
      end
      took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
      puts JSON.generate("specs" => specs, "errors" => MultiTenant.errors, "cards" => MultiTenant.cards, "raised" => raised, "seconds" => took)
    RUBY
    trace = File.join(lab, "hostile", "trace-#{SecureRandom.hex(4)}")
    out, err, status = run_as("mtmember", "strace", "-f", "-qq", "-y", "-s", "4096", "-o", trace, RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", script)
    result = JSON.parse(out.lines.last.to_s) rescue { "raised" => "no result: #{out} #{err}" } # rubocop:disable Style/RescueModifier
    result.merge("status" => status.exitstatus, "log" => err.lines.grep(/multitenant: /).map(&:chomp), "written" => written_paths(trace),
                 "root" => root)
  end

  def member_root(name)
    home = File.join(lab, "home", "mtmember")
    dir = File.join(home, name, "ondemand/data/sys/dashboard")
    FileUtils.mkdir_p(dir)
    pw = Etc.getpwnam("mtmember")
    # Each directory made here, never recursively: other roots hold planted symlinks.
    (Pathname(dir).relative_path_from(Pathname(home)).descend.map { |p| File.join(home, p.to_s) } + [home]).each do |d|
      File.lchown(pw.uid, pw.gid, d)
    end
    File.chmod(0o700, home)
    File.chmod(0o755, File.join(lab, "home"))
    dir
  end

  # ------------------------------------------------------------------------------ OOD's own reading
  # What OOD's BatchConnect::Session.all and #connect do with a session file and its connection.yml
  # (apps/dashboard/app/models/batch_connect/session.rb at v4.2.3, ../shared/docs/ood-facts.md).
  def ood_reads!(db_path, root)
    db = JSON.parse(File.read(db_path))
    expect(db).to be_a(Hash)
    expect(db["id"]).to eq(File.basename(db_path))
    expect(db["created_at"]).to be_a(Integer)
    expect(db["job_id"]).to be_a(String)
    expect(db["cluster_id"]).to be_a(String)
    expect(db["token"]).to be_a(String)
    expect(db["title"]).to be_a(String)
    expect(db["script_type"]).to eq("basic")
    conn_path = File.join(root, "batch_connect", db["token"], "output", db["id"], "connection.yml")
    conn = YAML.safe_load(File.read(conn_path))
    expect(conn).to be_a(Hash)
    expect(conn.keys + conn.values).to all(be_a(String))
    OpenStruct.new(conn) # as #connect binds it
    [db, conn]
  end

  MARKDOWN = Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true, strikethrough: true,
                                                              fenced_code_blocks: true, no_intra_emphasis: true)

  # The card as OOD shows it: the title through Rails' escaping (<%= session.title %> in
  # card/_card_header.html.erb), the delivery app's view.html.erb through ERB and Markdown.
  def rendered(db, conn)
    erb = File.read(File.join(ROOT, "ood/apps", db["token"].delete_prefix("sys/"), "view.html.erb"))
    title = ERB.new(%(<span class="card-text"><%= ERB::Util.h(title) %></span>)).result_with_hash(title: db["title"])
    title + MARKDOWN.render(ERB.new(erb).result(OpenStruct.new(conn).instance_eval { binding }))
  end

  def expect_inert(html)
    expect(html).not_to match(/<script/i)
    tags = html.scan(/<([a-zA-Z][a-zA-Z0-9]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/)
    expect(tags.map(&:first).map(&:downcase) & %w[script img object embed svg style link meta base textarea]).to eq([])
    tags.select { |t, _| t.casecmp?("iframe") }.each { |_, attrs| expect(attrs).to start_with(' sandbox=""') }
    # The content app's srcdoc is a document of its own, escaped, rendered in the sandbox.
    tags.each do |_, attrs|
      attrs = attrs.gsub(/\ssrcdoc="[^"]*"/, "")
      expect(attrs).not_to match(/\s(on[a-z]+|style)\s*=/i)
      expect(attrs).not_to match(/(href|src|action)\s*=\s*["']?\s*javascript:/i)
    end
  end

  # Each planted symlink in a data root of its own (discovered over the mtcluster queue): it leads to
  # a victim outside, owned by root and writable by everyone, holding one file.
  def symlink_runs
    good_a = @runs[:mtcluster]["specs"].fetch(case_job(:good_card_a).id)
    SYMLINKS.each do |s|
      root = member_root(s[:name].to_s)
      victim = Dir.mktmpdir("mt-victim-", "/var/tmp")
      @victims << victim
      File.chmod(0o777, victim)
      File.write(File.join(victim, "precious"), "untouched\n")
      File.chmod(0o666, File.join(victim, "precious"))
      at = s[:at] == :good_card_a_output ? card_output(good_a) : s[:at]
      target = s[:kind] == :file ? File.join(victim, "precious") : victim
      link = File.join(root, at)
      pw = Etc.getpwnam("mtmember")
      Pathname(at).dirname.descend.each do |p|
        next if p.to_s == "."

        FileUtils.mkdir_p(File.join(root, p.to_s))
        File.lchown(pw.uid, pw.gid, File.join(root, p.to_s))
      end
      File.symlink(target, link)
      File.lchown(pw.uid, pw.gid, link) # the member's own symlink: the strongest case
      before = Dir.glob("#{victim}/**/*", File::FNM_DOTMATCH).sort.map { |f| [f, File.lstat(f).mtime, File.file?(f) && File.read(f)] }
      run = traced_discover(root, clusters: { "mtcluster" => "ood_mt" })
      after = Dir.glob("#{victim}/**/*", File::FNM_DOTMATCH).sort.map { |f| [f, File.lstat(f).mtime, File.file?(f) && File.read(f)] }
      @runs[s[:name]] = run.merge("victim" => victim, "victim_before" => before, "victim_after" => after, "link" => link)
    end
  end

  # ------------------------------------------------------------------------------ recorded output
  RECORDED = "mtrecorded"
  RECORDED_NODE = "mtrec1"

  # A squeue-shaped executable: prints the recorded jobs in whatever -O columns it is asked for, each
  # value followed by the column's suffix (the caller's separators), as squeue -O does.
  def fake_squeue(dir, data)
    path = File.join(dir, "squeue")
    File.write(path, <<~RUBY)
      #!#{RbConfig.ruby}
      jobs = Marshal.load(File.binread(#{data.inspect}))
      spec = ARGV[ARGV.index("-O") + 1]
      cols = spec.split(",").map { |c| c.split(":", 2) }
      sep = cols.first[1].to_s
      $stdout.binmode
      $stdout.write(jobs.map { |j| cols.map { |f, suffix| (j[:sep_in_name] && f == "Name" ? j[f].to_s + sep : j[f].to_s).b + suffix.to_s.b }.join + "\\n" }.join)
    RUBY
    File.chmod(0o755, path)
    path
  end

  def recorded_run
    dir = File.join(lab, "hostile", "recorded")
    FileUtils.mkdir_p(File.join(dir, "clusters.d"))
    File.chmod(0o755, dir)
    jobs = []
    next_id = 700_000
    record = ->(**f) { jobs << { "JobID" => (next_id += 1).to_s, "UserName" => "mtowner", "WCKey" => "multitenant", "Cluster" => RECORDED, "RestartCnt" => "0", "NodeList" => RECORDED_NODE }.merge(f.transform_keys(&:to_s)) }
    # The flood around the cases: plain names, other groups' shares, other WCKeys, and good shares of
    # two owners, 10 000 jobs in all.
    flood = { plain: 6000, other_group: 3000, other_wckey: 900 }
    flood[:plain].times { |i| record.call("Name" => "sys/dashboard/sys/jupyter-#{i}", "UserName" => %w[mtowner mtmember mtprimary][i % 3]) }
    flood[:other_group].times { |i| record.call("Name" => "mt|bogus#{i % 97}|2.#{b64(SecureRandom.random_bytes(84))}") }
    flood[:other_wckey].times { |i| record.call("Name" => "mt|mtclass|2.#{b64(SecureRandom.random_bytes(84))}", "WCKey" => "personal") }
    @flood_good = []
    # mtowner: 5 cards and 10 form choices; mtprimary: 12 cards (2 over the per-owner cap) and 13.
    [["mtowner", 5, 10], ["mtprimary", 12, 13]].each do |owner, cards, forms|
      (cards + forms).times do |i|
        record.call("UserName" => owner, "Name" => "")
        @job = Job.new(id: jobs.last["JobID"], cluster: RECORDED, node: RECORDED_NODE)
        jobs.last["Name"] = seal(msg("app" => "Flood #{owner} #{i}", "method" => i < cards ? "card" : "form"), owner: owner)
        @flood_good << @job.id
      end
    end
    cases_on(:recorded).reject { |k| k[:flood] }.each do |k|
      f = { "UserName" => k[:owner] || "mtowner", "NodeList" => k[:nodes] || RECORDED_NODE, "Cluster" => k[:cluster] || RECORDED,
            "WCKey" => k[:wckey] || "multitenant", "Name" => "" }
      record.call(**f.transform_keys(&:to_sym))
      jobs.last["JobID"] = k[:id] if k[:id]
      jobs.last["JobID"] = case_job(k[:dup_of]).id if k[:dup_of]
      jobs.last[:sep_in_name] = true if k[:sep]
      @job = Job.new(case: k, id: jobs.last["JobID"], cluster: RECORDED, node: RECORDED_NODE)
      @job.name = jobs.last["Name"] = instance_exec(&k[:build])
      @jobs[k[:name]] = @job
    end
    (10_000 - jobs.size).times { |i| record.call("Name" => "padding-#{i}") }
    jobs = jobs.each_with_index.sort_by { |j, i| [j["JobID"].to_i, i] }.map(&:first) # as squeue lists them; a duplicate stays after its first
    @recorded_jobs = jobs
    data = File.join(dir, "jobs.marshal")
    File.binwrite(data, Marshal.dump(jobs))
    squeue = fake_squeue(dir, data)
    doc = { "v2" => { "metadata" => { "title" => "recorded", "hidden" => true },
                      "job" => { "adapter" => "slurm", "cluster" => RECORDED, "bin_overrides" => { "squeue" => squeue } } } }
    File.write(File.join(dir, "clusters.d", "ood_rec.yml"), YAML.dump(doc))
    Dir.glob("#{dir}/**/*").each { |f| File.chmod(File.directory?(f) || File.executable?(f) ? 0o755 : 0o644, f) }
    @runs[:recorded] = traced_discover(member_root("corpus-recorded"), clusters: { RECORDED => "ood_rec" },
                                                                        clusters_dir: File.join(dir, "clusters.d"))
  end

  # ---------------------------------------------------------------------------------- assertions
  def lines_naming(run, jid)
    [run["errors"].grep(/\bjob #{jid}\b/), run["log"].grep(/\bjob #{jid}\b/)]
  end

  # OOD's paths of a spec's card (ood-facts: batch_connect/db/<id>, batch_connect/<token>/output/<id>).
  def card_db(run, spec) = File.join(run["root"], "batch_connect/db", spec["info"]["card_id"])
  def card_output(spec) = File.join("batch_connect", spec["accounting"]["mtd"], "output", spec["info"]["card_id"])

  # The session files the run wrote (its trace), as they are now: a planted symlink cannot make a file
  # outside pass for one.
  def db_files(run)
    dir = File.join(File.realpath(run["root"]), "batch_connect/db/")
    run["written"].select { |p| p.start_with?(dir) && !File.basename(p).end_with?(".bak") && File.file?(p) }
  end

  # (a), (b), (c), (e) for one run.
  def expect_sound_run(run, goods)
    expect(run["status"]).to eq(0)
    expect(run["raised"]).to be_nil
    expect(run["errors"].grep(/discovery failed|Error:|panicked/)).to eq([])
    root = "#{File.realpath(run["root"])}/"
    expect(run["written"].reject { |p| p.start_with?(root) || p == "/dev/null" }).to eq([]), "written outside #{root}"
    db_files(run).each { |f| ood_reads!(f, run["root"]) }
    goods.each do |jid, method|
      spec = run["specs"].fetch(jid) { raise "good share of job #{jid} not delivered: #{run["errors"].inspect}" }
      next unless method == "card"

      expect(File.file?(card_db(run, spec))).to be(true), "good share of job #{jid} has no card: #{run["errors"].inspect} #{run["cards"].inspect}"
      ood_reads!(card_db(run, spec), run["root"])
    end
  end

  def goods_of(run_key)
    on = run_key == :mtbeta ? :mtbeta : :mtcluster
    CASES.select { |k| k[:on] == on && k[:name].to_s.start_with?("good_") }.to_h do |k|
      [case_job(k[:name]).id, k[:outcome] == :form ? "form" : "card"]
    end
  end

end

RSpec.describe "a hostile corpus of job names", :cluster do
  include HostileCorpus

  # -------------------------------------------------------------------------------------- the setup
  def stage(what) = (warn format("hostile corpus: %5.1f s %s", Process.clock_gettime(Process::CLOCK_MONOTONIC) - @t0, what) if ENV["MT_VERBOSE"])

  before(:context) do
    require_cluster!
    @t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @submitted = {}
    @jobs = {}
    @victims = []
    FileUtils.mkdir_p(File.join(lab, "hostile"))
    File.chmod(0o777, File.join(lab, "hostile")) # the traces, written by mtmember's strace
    real = cases_on(:mtcluster, :mtbeta, :refused)
    real.each do |k|
      cl = k[:on] == :mtbeta ? "mtbeta" : "mtcluster"
      @jobs[k[:name]] = HostileCorpus::Job.new(case: k, id: submit(k, cl), cluster: cl, node: node_of(cl))
    end
    stage("submitted")
    @submitted.each do |cl, ids|
      poll("#{ids.size} jobs running on #{cl}", timeout: 60) { names_on(cl, ids).size == ids.size }
    end
    stage("running")
    # Names in table order (replays need the good ones first); Slurm's answer to each rename kept.
    @renamed = {}
    real.each do |k|
      @job = @jobs[k[:name]]
      @job.name = instance_exec(&k[:build])
    end
    queue = Queue.new
    real.each { |k| queue << k }
    Array.new(8) do
      Thread.new do
        while (k = (queue.pop(true) rescue nil)) # rubocop:disable Style/RescueModifier
          @renamed[k[:name]] = rename(@jobs[k[:name]], @jobs[k[:name]].name)
        end
      end
    end.each(&:join)
    stage("renamed")
    @slurm_names = {}
    @submitted.each do |cl, ids|
      want = real.select { |k| @jobs[k[:name]].cluster == cl && k[:on] != :refused }.to_h { |k| [@jobs[k[:name]].id, @jobs[k[:name]].name.b] }
      poll("renames on #{cl}", timeout: 30) { names_on(cl, ids).then { |got| want.all? { |jid, n| got[jid] == n } && (@slurm_names[cl] = got) } }
    end

    stage("names read back")
    @runs = {}
    @runs[:mtcluster] = traced_discover(member_root("corpus-a"), clusters: { "mtcluster" => "ood_mt" })
    @runs[:mtbeta] = traced_discover(member_root("corpus-b"), clusters: { "mtbeta" => "ood_beta" })
    stage("two runs")
    symlink_runs
    stage("symlink runs")
    recorded_run
    stage("recorded run")
    # MT_VERBOSE=1: what each run said, for a reader of a failure.
    File.write("/tmp/hostile-runs.json", JSON.pretty_generate(@runs.transform_values { |r| r.except("specs").merge("spec_keys" => r["specs"]&.keys&.first(60)) })) if ENV["MT_VERBOSE"]
    @setup_seconds = Process.clock_gettime(Process::CLOCK_MONOTONIC) - @t0
  end

  after(:context) do
    @submitted&.each { |cl, ids| system("scancel", "-M", cl, *ids) unless ids.empty? }
    FileUtils.rm_rf(File.join(lab, "home", "mtmember")) if defined?(lab)
    FileUtils.rm_rf(File.join(lab, "hostile")) if defined?(lab)
    @victims&.each { |v| FileUtils.rm_rf(v) }
  end

  HostileCorpus::CASES.each do |kase|
    why = kase[:why] ? " (#{kase[:why]})" : ""
    expected = case kase[:outcome]
               when :error then "one reason #{kase[:reason].source}"
               when :form then kase[:reason] ? "a form choice and one reason #{kase[:reason].source}" : "a form choice"
               else kase[:outcome].to_s
               end
    it "#{kase[:name]} [#{kase[:on]}]: #{expected}#{why}" do
      if kase[:flood]
        run = @runs[:recorded]
        expect_sound_run(run, {})
        expect(@recorded_jobs.size).to eq(10_000)
        expect(run["specs"].keys).to include(*@flood_good)
        expect(run["errors"].size).to be <= 51
        expect(run["errors"].grep(/discovery stopped/)).to eq([])
        expect(run["errors"].grep(/bogus/)).to eq([])
        # The default caps: 10 cards per owner, whatever the flood; the rest held back in one line.
        expect(run["cards"]["created"].size).to eq(5 + 1 + 10) # mtowner's 5 and rec_good's, mtprimary's first 10
        expect(run["cards"]["held_back"].size).to eq(2)
        expect(run["errors"].grep(/held back/).size).to eq(1)
        expect(run["seconds"]).to be < 10
        next
      end
      job = case_job(kase[:name])
      run = @runs[kase[:on] == :mtbeta ? :mtbeta : kase[:on] == :recorded ? :recorded : :mtcluster]
      expect_sound_run(run, kase[:on] == :recorded ? { case_job(:rec_good).id => "card" } : goods_of(kase[:on]))

      if kase[:on] == :refused
        _, err, status = @renamed[kase[:name]]
        expect([status.exitstatus, err]).to match([1, /too long/])
        expect(@slurm_names["mtcluster"][job.id]).to eq("plain")
      elsif kase[:on] != :recorded
        expect(@slurm_names[job.cluster][job.id]).to eq(job.name.b), "Slurm altered the name"
        expect(@slurm_names[job.cluster][job.id].bytesize).to eq(kase[:bytes]) if kase[:bytes]
      end

      errors, log = lines_naming(run, job.id)
      spec = run["specs"][job.id]
      spec = nil if kase[:dup_of] # the first record's
      summary = kase[:or_summary] && run["log"].grep(/multitenant: /).map { |l| l.split("multitenant: ", 2)[1] }.grep(kase[:or_summary])
      if summary&.any? && errors.empty?
        # Said once for all such jobs, as information, not per job (the discovery being reworked says so).
        expect(summary.size).to eq(1)
      elsif kase[:reason]
        expect(errors.size).to eq(1), "one reason naming job #{job.id}, got #{errors.inspect} (all: #{run["errors"].inspect})"
        expect(errors.first).to match(/\Ajob #{job.id} \(#{kase[:owner] || "mtowner"}\): /)
        expect(errors.first).to match(kase[:reason])
        expect(log.size).to eq(1), "one logged line, got #{log.inspect}"
        expect(errors.first).not_to include("\n")
      else
        expect(errors).to eq([]), "no error for job #{job.id} by design, got #{errors.inspect}"
        expect(log).to eq([])
      end

      case kase[:outcome]
      when :delivered, :form
        expect(spec).not_to be_nil, "job #{job.id} not in the specs: #{run["errors"].inspect}"
        expect(spec["info"]["user"]).to eq("mtowner")
        if kase[:outcome] == :delivered
          expect(run["cards"]["created"]).to include(spec["info"]["card_id"])
          db, conn = ood_reads!(card_db(run, spec), run["root"])
          expect(run["written"]).to include(File.realpath(card_db(run, spec))) # the trace sees the run's writes
          expect(db["title"]).to eq("mtowner: #{spec["info"]["app"]}")
          expect(conn).to include("jobid" => job.id, "mt_owner" => "mtowner", "mt_group" => "mtclass")
          if kase[:render]
            expect(db["title"]).to include("<")
            html = rendered(db, conn)
            expect_inert(html)
            expect(html).to include("Shared by mtowner with group mtclass (job #{job.id}).")
          end
        else
          expect(spec["info"]["card_id"]).to be_nil
        end
      else
        next expect(run["specs"][job.id]["accounting"]["mta"]).to eq("Recorded good") if kase[:dup_of]

        expect(spec).to be_nil
        expect(db_files(run).map { |f| JSON.parse(File.read(f))["job_id"] }).not_to include(job.id)
      end
      # The forged record names good_card_a's job: that share is still delivered exactly once.
      expect(run["specs"].keys.count(case_job(:good_card_a).id)).to eq(1) if kase[:name].to_s.start_with?("newline_forged")
    end
  end

  it "compression_bomb_via_the_api: Envelope.seal refuses content over 16 KiB rather than seal a name no member can open" do
    @job = HostileCorpus::Job.new(id: "1", cluster: "mtcluster", node: "n1")
    big = msg("connection" => (1..20).to_h { |i| ["v#{i}", "a" * 1000] })
    expect { seal(big) }.to raise_error(MultiTenant::InputError, /16384/)
  end

  HostileCorpus::SYMLINKS.each do |s|
    it "#{s[:name]} [symlink]: refused in one line naming the path, nothing outside written, the target untouched" do
      run = @runs[s[:name]]
      expect_sound_run(run, {})
      expect(run["victim_after"]).to eq(run["victim_before"])
      expect(File.read(File.join(run["victim"], "precious"))).to eq("untouched\n")
      expect(run["written"].grep(/#{Regexp.escape(run["victim"])}/)).to eq([])
      mentions = run["errors"].grep(s[:reason])
      expect(mentions.size).to eq(1), "one line naming the planted symlink, got #{run["errors"].inspect}"
      expect(run["log"].grep(s[:reason]).size).to eq(1)
      # The good shares are still found (specs): only the cards the symlink blocks are not written.
      goods_of(:mtcluster).each_key { |jid| expect(run["specs"]).to have_key(jid) }
      if s[:name] == :symlink_at_an_output_dir
        good_b = run["specs"].fetch(case_job(:good_card_b).id)
        expect(File.file?(card_db(run, good_b))).to be(true)
        expect(run["specs"].fetch(case_job(:good_card_a).id)["info"]["card_id"]).not_to be_nil
        expect(File.exist?(card_db(run, run["specs"][case_job(:good_card_a).id]))).to be(false)
      end
    end
  end

  it "runs in well under two minutes" do
    expect(@setup_seconds).to be < 100
  end
end
