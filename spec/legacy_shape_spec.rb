# frozen_string_literal: true

require "erb"
require "yaml"

# MultiTenant.specs in the first implementation's shape, as its client forms use it (issue 12): they
# write values straight into single-quoted YAML flow sequences in form.yml.erb, e.g.
#   - [ '<%= v["accounting"]["mta"] %> (Job ID: <%= id %>)', '<%= v["connection"]["ollama_url"] %>' ]
# One share's app name must never make that form invalid YAML (OOD would drop the app from every
# member's dashboard). The form here is our own fixture written in that style
# (spec/fixtures/legacy-client); the real dashboard renders it in spec/real_ood/legacy_forms_spec.rb.
RSpec.describe "the legacy-shaped specs in a legacy-style form" do
  LEGACY_SHAPE_FIXTURE = File.join(ROOT, "spec/fixtures/legacy-client")

  # Names a publisher accepts (mtshare publish, docs/envelope.md "App names"), hostile and natural.
  LEGACY_SHAPE_NAMES = ["Prof's LLM", "a: b", "#1 model", "<%= 1+1 %>", "[x], {y}", "Ollama_API", "Llama 3.1 (8B)", "gpt-oss:120b",
           %(say "hi"), "C# tutor", "50% <off>", "back\\slash `tick`", "&a *b !c |d >e @f", "- dash", "? what", "ends:",
           "Modèle « été »", "日本語モデル", "نموذج", "🦙 llama", "x -- y", "it''s", "a,b", "}{", "%>", "<%", "'"].freeze

  def safe_name(name) = MultiTenant::Discovery._form_safe("name", name)
  def safe_value(value) = MultiTenant::Discovery._form_safe("value", value)

  # One share as the native discovery gives it (ext/multitenant-core/src/specs.rs): the name as
  # published in info "app", its form-safe rendering in mta and mt_appname, URLs made form-safe.
  def share(id, app, url, user: "alice", key: nil)
    mta = safe_name(app)
    { "info" => { "user" => user, "app" => app, "cluster" => "hpc", "group" => "mtclass" },
      "accounting" => { "mtu" => "", "mti" => "s#{id}", "mta" => mta, "mtm" => "card", "mtd" => "sys/multitenant-delivery_default" },
      "connection" => { "host" => "node1", "ollama_url" => safe_value(url), "openai_base_url" => safe_value("#{url}/v1"),
                        "api_key" => key, "jobid" => id.to_s.split("@").first, "mt_appname" => mta }.compact }
  end

  # The fixture's form as OOD reads it: ERB (OOD's BatchConnect::App uses trim_mode "-"), then YAML.
  def render_form(specs)
    MultiTenant.instance_variable_set(:@specs, specs)
    text = ERB.new(File.read(File.join(LEGACY_SHAPE_FIXTURE, "form.yml.erb")), trim_mode: "-").result(binding)
    YAML.safe_load(text)
  end

  after { MultiTenant.instance_variable_set(:@specs, {}) }

  it "renders one option per share, whatever the names and URLs, each name recognisable" do
    specs = LEGACY_SHAPE_NAMES.each_with_index.to_h do |name, i|
      id = i.even? ? (100 + i).to_s : "#{100 + i}@beta.2_x-y"
      [id, share(id, name, "http://node1:#{4000 + i}/p#{i}'s <%= x %> #{name}")]
    end
    options = render_form(specs).dig("attributes", "llm_url", "options")
    expect(options.size).to eq(LEGACY_SHAPE_NAMES.size + 1)
    expect(options.first).to eq(["None", ""])
    options.drop(1).zip(specs).each do |(label, value), (id, s)|
      expect(label).to eq("#{s["accounting"]["mta"]} (Job ID: #{id})")
      expect(value).to eq(s["connection"]["ollama_url"])
      expect(URI.parse(value).host).to eq("node1")
    end
    labels = options.drop(1).map(&:first)
    expect(labels).to include("Prof’s LLM (Job ID: 100)", "a： b (Job ID: 101@beta.2_x-y)", "＃1 model (Job ID: 102)",
                              "<％= 1+1 ％> (Job ID: 103@beta.2_x-y)", "［x］， ｛y｝ (Job ID: 104)",
                              "Ollama_API (Job ID: 105@beta.2_x-y)", "Modèle « été » (Job ID: 116)", "日本語モデル (Job ID: 117@beta.2_x-y)",
                              "🦙 llama (Job ID: 119@beta.2_x-y)")
    expect(options[1][1]).to eq("http://node1:4000/p0%27s%20%3C%25=%20x%20%25%3E%20Prof%27s%20LLM")
  end

  it "would break on the names as published: the fixture is as fragile as the forms it copies" do
    broken = { "1" => share("1", "Prof's LLM", "http://node1:4000").tap { |s| s["accounting"]["mta"] = "Prof's LLM" } }
    expect { render_form(broken) }.to raise_error(Psych::SyntaxError)
    expect { render_form({ "1" => share("1", "ok", "http://node1:4000/it's").tap { |s| s["connection"]["ollama_url"] = "http://node1:4000/it's" } }) }
      .to raise_error(Psych::SyntaxError)
  end

  # Every way a form could write the name in a YAML line reads it back as the same text; ERB never sees
  # a tag in it. Type resolution of a plain scalar (a name that is exactly "true" or "12") is not ours.
  it "makes names the same text read as single-quoted, double-quoted or plain YAML, in flow or block, and inert in ERB" do
    rng = Random.new(12)
    alphabet = [*" !\"\#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".chars, *"aZ09".chars, "é", "日", "🦙", "’", "\u2028", "\u0085", "\t", "\n"]
    generated = Array.new(3000) { Array.new(rng.rand(1..8)) { alphabet.sample(random: rng) }.join }
    scanner = Psych::ScalarScanner.new(Psych::ClassLoader.new)
    (LEGACY_SHAPE_NAMES + generated).each do |name|
      safe = safe_name(name)
      expect(safe.lines.size).to be <= 1, "#{name.inspect} -> #{safe.inspect}"
      expect(safe).not_to include("<%"), "#{name.inspect} -> #{safe.inspect}"
      expect(safe).not_to include("%>"), "#{name.inspect} -> #{safe.inspect}"
      expect(safe.chars.size).to eq(name.chars.size)
      expect(YAML.safe_load("- [ '#{safe} (Job ID: 1)', 'x' ]")).to eq([["#{safe} (Job ID: 1)", "x"]]), "#{name.inspect} -> #{safe.inspect}"
      expect(YAML.safe_load(%(- [ "#{safe}", "x" ]))).to eq([[safe, "x"]]), "#{name.inspect} -> #{safe.inspect}"
      expect(YAML.safe_load("label: '#{safe}'")).to eq("label" => safe)
      next if safe.strip != safe || !scanner.tokenize(safe).is_a?(String)

      expect(YAML.safe_load("- [ #{safe}, x ]")).to eq([[safe, "x"]]), "plain in flow: #{name.inspect} -> #{safe.inspect}"
      expect(YAML.safe_load("label: #{safe}")).to eq("label" => safe), "plain in block: #{name.inspect} -> #{safe.inspect}"
      expect(YAML.safe_load("- #{safe}")).to eq([safe]), "plain sequence entry: #{name.inspect} -> #{safe.inspect}"
    end
  end

  it "keeps a name that needs nothing exactly, letters of every script included" do
    ["Ollama_API", "gpt-oss:120b", "Llama 3.1 (8B) - fast!", "C# tutor", "Modèle français", "日本語モデル", "نموذج عربي", "🦙 llama", "a<b>c"]
      .each { |name| expect(safe_name(name)).to eq(name) }
  end

  it "percent-encodes URLs so they are the same text between quotes, and keeps other values exactly" do
    rng = Random.new(7)
    alphabet = [*" !\"\#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".chars, "a", "9", "é", "日", "\n", "\u2028"]
    Array.new(2000) { "http://node1:4000/#{Array.new(rng.rand(0..10)) { alphabet.sample(random: rng) }.join}" }.each do |url|
      safe = safe_value(url)
      expect(safe).to match(/\Ahttp:\/\/node1:4000\/[\x21-\x7e]*\z/), "#{url.inspect} -> #{safe.inspect}"
      expect(safe).not_to match(/['"\\<>\s]/)
      expect(YAML.safe_load("- [ 'label', '#{safe}' ]")).to eq([["label", safe]])
      expect(YAML.safe_load(%(- [ "label", "#{safe}" ]))).to eq([["label", safe]])
      # What an HTTP client sends: the same path and query once decoded.
      uri = URI.parse(safe)
      expect(uri.host).to eq("node1")
      # (Spaces and C0 controls around a URL are not part of it, as browsers and Apps.http_url read it.)
      raw = url.sub(/[\x00-\x20]+\z/, "").split("#", 2).first.delete_prefix("http://node1:4000")
      sent = uri.path.to_s + (uri.query ? "?#{uri.query}" : "")
      expect(URI.decode_www_form_component(sent.gsub("+", "%2B"))).to eq(raw), "#{url.inspect} -> #{safe.inspect}"
    end
    ["Xk9#q 'v|7\"zP€2", "jdbc:postgresql://node042:5432/db", "# Title\n\n'quoted' <%= erb %>", "node017", "ftp://x/'"]
      .each { |v| expect(safe_value(v)).to eq(v) }
  end

  it "keeps the lookups consistent: the URL a form offers is the one specs hold and the client job gets, with its key" do
    specs = { "7" => share("7", "Prof's LLM", "http://node1:4000/it's", key: "k" * 32) }
    MultiTenant.instance_variable_set(:@specs, specs)
    offered = MultiTenant.llm_options
    expect(offered).to eq([["alice: Prof's LLM (job 7)", "http://node1:4000/it%27s"]])
    access = { base_url: "http://node1:4000/it%27s/v1", ollama_url: "http://node1:4000/it%27s", key: "k" * 32 }
    expect(MultiTenant::Apps.llm_access(offered[0][1])).to include(access)
    chat = MultiTenant.openai_options
    expect(chat).to eq([["alice: Prof's LLM (job 7)", "http://node1:4000/it%27s/v1"]])
    expect(MultiTenant::Apps.llm_access(chat[0][1])).to include(access)
    # Our own forms offer the share's key.
    expect(MultiTenant.llm_choices).to eq([["alice: Prof's LLM (job 7)", "7"]])
    expect(MultiTenant::Apps.llm_access("7")).to include(access)
    # The legacy-style form offers the same value.
    expect(render_form(specs).dig("attributes", "llm_url", "options").last).to eq(["Prof’s LLM (Job ID: 7)", offered[0][1]])
  end

  it "shows the owner the name as published, not its form-safe rendering" do
    me = Etc.getpwuid(Process.uid).name
    html = MultiTenant::View.owner(job_id: "7", cluster_id: "hpc", job_name: "x", shares: { "7" => share("7", "Prof's <LLM>", "http://node1:4000", user: me) },
                                   group_members: ->(_) { nil })
    expect(html).to include("Prof&#39;s &lt;LLM&gt;")
    expect(html).not_to include("Prof’s")
  end
end
