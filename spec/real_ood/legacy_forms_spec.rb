# frozen_string_literal: true

require "fileutils"

# Issue 12, "drop-in, for real": the first implementation's client forms (Jupyter, Gradio) build their
# select from MultiTenant.specs by writing values straight into single-quoted YAML flow sequences. One
# share whose app name holds a "'" made such a form invalid YAML, and OOD then dropped the app from the
# menu of every member. Here a form written in that style (our own fixture, spec/fixtures/legacy-client)
# is installed in the REAL dashboard; the owner publishes shares under hostile and natural names, and the
# member's dashboard still lists the app and offers one option per share, each name recognisable.
RSpec.describe "A legacy-style client form in the real Open OnDemand dashboard", :cluster do
  include RealOOD::Helpers

  LEGACY_APP = "mt-legacy-client"
  LEGACY_FIXTURE = File.join(ROOT, "spec/fixtures/legacy-client")
  # Names mtshare publish accepts (docs/envelope.md "App names"), with how the legacy-style form's
  # label shows them (accounting.mta) and how the member's card titles them (the name as published).
  LEGACY_NAMES = {
    "Prof's LLM" => "Prof’s LLM",
    "a: b" => "a： b",
    "#1 model" => "＃1 model",
    "<%= 1+1 %>" => "<％= 1+1 ％>",
    "[x], {y}" => "［x］， ｛y｝",
    "Modèle « été » 日本語 🦙" => "Modèle « été » 日本語 🦙",
    "Ollama_API" => "Ollama_API"
  }.freeze

  after do
    stop_dashboards
    cancel_jobs
    FileUtils.rm_rf(@installed) if @installed
  end

  it "mtshare publish refuses an app name with a newline, in one line naming the character" do
    require_cluster!
    _, err, status = run_as("mtowner", File.join(lab, "mtshare"), "publish", "--dry-run", "--group", "mtclass", "--app", "x\ny",
                            "--job-id", "1", "--owner", "mtowner", "--cluster", "mtcluster", env: { "MULTITENANT_KEY_DIR" => key_dir })
    expect(status).not_to be_success
    expect(err).to eq("mtshare: app name must not contain whitespace other than the space (U+000A at character 2)\n")
  end

  RealOOD::VERSIONS.each_key do |version|
    context "OOD #{version}" do
      before do
        require_real_ood!(version)
        %w[mtowner mtmember].each { |u| wipe_dataroot(u) }
        system("scancel", "-M", "mtcluster,mtbeta", "-u", "mtowner", exception: true)
        poll("mtowner's earlier jobs to leave the queue", timeout: 60) do
          Open3.capture2("squeue", "-M", "mtcluster,mtbeta", "-h", "-u", "mtowner").first.lines.grep_v(/\ACLUSTER: /).empty?
        end
        @installed = File.join(RealOOD::ROOT_DIR, version, "root/var/www/ood/apps/sys", LEGACY_APP)
        FileUtils.rm_rf(@installed)
        FileUtils.cp_r(LEGACY_FIXTURE, @installed)
        FileUtils.chmod_R("u=rwX,go=rX", @installed)
      end

      it "lists the legacy-style app, and its form offers one option per share whatever the names; the cards keep the names as published" do
        node = node_of("mtcluster")
        shares = LEGACY_NAMES.keys.each_with_index.map do |name, i|
          url = "http://#{node}:#{4100 + i}/it's"
          id = submit_share(owner: "mtowner", app: name, args: ["--set", "host=#{node}", "--set", "ollama_url=#{url}"], wait: false)
          [id, name, "http://#{node}:#{4100 + i}/it%27s"]
        end
        wait_published(*shares.map(&:first))

        member = dashboard(version, "mtmember", env: { "MULTITENANT_TTL" => "3600" }).start
        expect(member.get("/").body).to include("/batch_connect/sys/#{LEGACY_APP}/session_contexts/new")
        page = member.get("/batch_connect/sys/#{LEGACY_APP}/session_contexts/new")
        expect(page.code).to eq("200")
        body = page.body.dup.force_encoding(Encoding::UTF_8) # Net::HTTP gives bytes
        select = body[%r{<select[^>]*id="batch_connect_session_context_llm_url"[^>]*>(.*?)</select>}m, 1]
        expect(select).not_to be_nil, "no select on the form page:\n#{body[0, 2000]}"
        options = select.scan(%r{<option[^>]*value="([^"]*)"[^>]*>([^<]*)</option>}m).map { |v, l| [CGI.unescapeHTML(l.strip), CGI.unescapeHTML(v)] }
        expect(options.size).to eq(shares.size + 1), options.inspect
        expect(options.first).to eq(["None", ""])
        shares.each do |id, name, url|
          shown = LEGACY_NAMES.fetch(name)
          expect(options).to include([a_string_matching(/\A#{Regexp.escape(shown)} \(Job ID: #{id}(@mtcluster)?\)\z/), url]),
                             "#{name.inspect}: #{options.inspect}"
        end

        cards = member.cards.values.map { |c| c.dup.force_encoding(Encoding::UTF_8) }
        expect(cards.size).to eq(shares.size)
        LEGACY_NAMES.each_key do |name|
          expect(cards.count { |c| c.include?("mtowner: #{CGI.escapeHTML(name)}") }).to eq(1), "a card titled #{name.inspect}"
        end
      end
    end
  end
end
