# frozen_string_literal: true

require "digest"
require "multitenant/admin"

# README "Migrate from the first implementation", run on the real test cluster: an owner's service
# still publishes in the first implementation's format while another already runs `mtshare publish`;
# a member's dashboard reads both while the migration window is open (MULTITENANT_LEGACY=true), only
# ours once it closes, and the admin's `list` says when it can close. The member's own OOD sessions are
# never touched.
RSpec.describe "migrating a site from the first implementation", :cluster do
  before { require_cluster! }
  after { cancel_jobs }

  let(:node) { node_of("mtcluster") }

  # Every file under the data root but the gem's own records.
  def files(root) = Dir.glob("#{root}/**/*", File::FNM_DOTMATCH).select { |f| File.file?(f) }.reject { |f| f.include?("/multitenant/") }

  def fingerprint(paths) = paths.to_h { |f| [f, [Digest::SHA256.file(f).hexdigest, File.mtime(f), File.stat(f).mode]] }

  def db(root, card) = File.join(root, "batch_connect/db", card)

  # The admin's `list` on an OOD tree with nothing installed (plain Slurm commands, the test key dir).
  def admin_list(legacy:)
    Dir.mktmpdir("ood") do |dir|
      env = { "MULTITENANT_KEY_DIR" => key_dir, "MULTITENANT_LEGACY" => legacy.to_s }
      MultiTenant::Admin.new(ood_etc: dir, apps_dir: File.join(dir, "apps"), env: env).list
    end
  end

  it "a member sees the legacy and the current share while the window is open, only the current one once it closes; " \
     "their own sessions are never touched" do
    root = dataroot_for("mtmember")
    # The member's own sessions, among them one of a service app of ours and one in a delivery app's
    # output directory (a name the gem's cards also use): discovery must not touch any of them.
    session = "11111111-2222-4333-8444-555555555555"
    own = [File.join(root, "batch_connect/db", session),
           File.join(root, "batch_connect/sys/jupyter/output", session, "connection.yml"),
           File.join(root, "batch_connect/db/22222222-3333-4444-8555-666666666666"),
           File.join(root, "batch_connect/sys/multitenant-llm/output/22222222-3333-4444-8555-666666666666/connection.yml"),
           File.join(root, "batch_connect/sys/multitenant-delivery_default/output", session, "user_defined_context.json")]
    own.each do |f|
      FileUtils.mkdir_p(File.dirname(f))
      File.write(f, "{\"own\": \"#{f}\"}")
    end
    pw = Etc.getpwnam("mtmember")
    FileUtils.chown_R(pw.uid, pw.gid, root)
    sessions = fingerprint(own)
    untouched = ->(step) { expect(fingerprint(own)).to eq(sessions), "the member's own session files changed: #{step}" }

    old = legacy_share(connection: { "host" => node, "ollama_url" => "http://#{node}:4000" })
    current = submit_share(owner: "mtowner", args: ["--set", "host=#{node}", "--set", "ollama_url=http://#{node}:4000"])

    # The window is open: both shares are specs, and both are cards.
    open = discover_as("mtmember", dataroot: root, legacy: true)
    expect([open["errors"], open["notes"]]).to eq([[], []])
    expect(open["specs"].keys).to contain_exactly(old, current)
    expect(open["specs"][old]["info"]).to include("version" => "legacy", "user" => "mtowner", "cluster" => "mtcluster")
    expect(open["specs"][old]["connection"]).to include("ollama_url" => "http://#{node}:4000", "jobid" => old)
    expect(open["specs"][current]["info"]).to include("version" => "2", "user" => "mtowner")
    cards = open["specs"].transform_values { |s| s["info"]["card_id"] }
    expect(cards.values).to all(be_a(String))
    expect(open["cards"]["created"]).to contain_exactly(*cards.values)
    expect(JSON.parse(File.read(db(root, cards[old])))).to include("job_id" => old, "title" => "mtowner: Legacy_API")
    expect(JSON.parse(File.read(db(root, cards[current])))).to include("job_id" => current, "title" => "mtowner: Ollama_API")
    expect(files(root).size).to eq(own.size + 4) # each card: its db file and its connection.yml
    untouched.call("window open")
    # Another run while it is open changes nothing.
    again = discover_as("mtmember", dataroot: root, legacy: true)
    expect([again["specs"].keys.sort, again["cards"]["created"], again["cards"]["removed"]]).to eq([[old, current].sort, [], []])
    current_card = fingerprint(files(root) - own)

    # The admin sees that the window cannot close yet, and whose job holds it open.
    expect(admin_list(legacy: true).last).to eq("legacy: 1 running job(s) publish in the first implementation's format (mtowner: 1): " \
                                                "their owners move to `mtshare publish`; MULTITENANT_LEGACY is on: keep it on until then")

    # The window closes while the legacy job still runs: its card goes at the next discovery, ours stays as it was.
    closed = discover_as("mtmember", dataroot: root, legacy: false)
    expect(closed["errors"]).to eq([])
    expect(closed["specs"].keys).to eq([current])
    expect(closed["cards"]["removed"]).to eq([cards[old]])
    expect(closed["notes"]).to eq(["1 running job(s) publish in the first implementation's format, which is not read here " \
                                   "(mtowner: 1); MULTITENANT_LEGACY=true reads it while a site migrates"])
    expect(File.exist?(db(root, cards[old]))).to be(false)
    expect(files(root).grep(/#{cards[old]}/)).to eq([])
    expect(fingerprint(files(root) - own)).to eq(current_card.reject { |f, _| f.include?(cards[old]) })
    untouched.call("window closed")

    # The owner moves the last service to `mtshare publish`: nothing in the old format is left.
    system("scancel", old, exception: true)
    poll("job #{old} to end") { !running?(old) }
    done = discover_as("mtmember", dataroot: root, legacy: false)
    expect([done["specs"].keys, done["notes"], done["errors"], done["cards"]["removed"]]).to eq([[current], [], [], []])
    expect(admin_list(legacy: false).grep(/legacy/)).to eq([])
    untouched.call("after the migration")
    expect(files(root).sort).to eq((own + current_card.keys.reject { |f| f.include?(cards[old]) }).sort)
  end
end
