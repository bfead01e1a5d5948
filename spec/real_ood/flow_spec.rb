# frozen_string_literal: true

require "time"

# The product in the REAL Open OnDemand dashboard (spec/ood/realood), at every OOD version we support,
# on the real test cluster, as real users: each user has their own dashboard process, and starting one
# is a "dashboard start".
RSpec.describe "In the real Open OnDemand dashboard", :cluster do
  include RealOOD::Helpers

  TITLE = %(Lab <b>dash</b> & "co" 'x')
  MODEL = %(tiny:1b<i>"&'</i>) # shown in the card's body by the delivery view
  # A TTL no spec outlasts: then only the start (or the completed-card path) can deliver or remove a card.
  NO_REFRESH = { "MULTITENANT_TTL" => "3600" }.freeze

  after do
    stop_dashboards
    cancel_cluster_jobs
    cancel_jobs
  end

  def launch_board(owner, title: TITLE)
    launch(owner, "multitenant-dashboard", share_fields("app_title" => title, "app_command" => "python3 -m http.server --bind 127.0.0.1 $port"))
  end

  def status_of(card) = card[/\b(Running|Starting|Queued|Completed|Undetermined)\b/, 1]

  # The card's own button (a form, as Rails' button_to renders it): its action and method.
  def button(card, kind)
    form = card[/<form[^>]*class="button_to"[^>]*action="([^"]+)"[^>]*>(?:(?!<\/form>).)*btn-#{kind}/m] or return nil
    action = CGI.unescapeHTML(form[/action="([^"]+)"/, 1]).delete_prefix(RealOOD::PREFIX)
    [action, form[/name="_method" value="(\w+)"/, 1] || "post"]
  end

  # Presses the button as the browser does: POST to its action, with _method when it has one.
  def press(dash, card, kind)
    action, verb = button(card, kind) || raise("the card has no #{kind} button")
    dash.post(action, verb == "post" ? {} : { "_method" => verb }, from: "/batch_connect/sessions")
  end

  RealOOD::VERSIONS.each_key do |version|
    context "OOD #{version}" do
      before do
        require_real_ood!(version)
        %w[mtowner mtmember mtoutsider].each { |u| wipe_dataroot(u) }
        # The test users' jobs left by a demo or an interrupted run would show as extra cards.
        system("scancel", "-M", "mtcluster,mtbeta", "-u", "mtowner", exception: true)
        poll("mtowner's earlier jobs to leave the queue", timeout: 60) do
          Open3.capture2("squeue", "-M", "mtcluster,mtbeta", "-h", "-u", "mtowner").first.lines.grep_v(/\ACLUSTER: /).empty?
        end
        system("sacctmgr", "-i", "modify", "user", "mtmember", "set", "adminlevel=None", out: File::NULL)
      end

      it "full loop: the owner's real form launches services; a member's first start shows them Running and they answer; the outsider sees nothing" do
        owner = dashboard(version, "mtowner").start
        board = launch_board(owner)
        content = launch(owner, "multitenant-content",
                         share_fields("content_title" => "Reading list", "content_format" => "markdown",
                                      "content" => "# Week 1\n\n<script>alert(1)</script> *read* chapter 2"))
        llm = launch(owner, "multitenant-llm", share_fields("ollama_model" => MODEL))
        [board, content, llm].each { |r| wait_shared(r["job_id"]) }
        # ood_core's real sbatch: the WCKey from submit.yml.erb, the owner's default account (not the group).
        out, = Open3.capture2("squeue", "-h", "-j", board["job_id"], "-O", "WCKey:40,Account:40")
        expect(out.split).to eq(%w[multitenant mtaccount])

        member = dashboard(version, "mtmember", env: NO_REFRESH).start
        cards = member.cards
        expect(cards.size).to eq(3), "cards: #{cards.values.map { |c| c[/card-title[^>]*>(.*?)<\/span>/m, 1] || c[0, 300] }.inspect}"
        by_job = cards.values.to_h { |html| [html[/\((\d+)\)/, 1], html] }
        expect(by_job.keys).to contain_exactly(board["job_id"], content["job_id"], llm["job_id"])
        expect(by_job.values.map { |c| status_of(c) }).to all(eq("Running"))

        card = by_job.fetch(board["job_id"])
        expect(card).to include("mtowner: Lab &lt;b&gt;dash&lt;/b&gt; &amp; &quot;co&quot; &#39;x&#39;")
        expect(card).not_to include("<b>dash</b>")
        # Behind the gate: the real card's Open is a form that posts the share's key once to the gate's
        # login (MULTITENANT_NODE_PROXY=direct here); the browser then holds an HttpOnly cookie.
        action = CGI.unescapeHTML(card[%r{<form method="post" action="([^"]+)"}, 1].to_s)
        key = card[/name="multitenant_key" value="(\h{32})"/, 1]
        expect(action).to match(%r{\Ahttp://[^/]+:\d+/\?multitenant-login\z})
        expect(key).not_to be_nil
        url = action.delete_suffix("?multitenant-login")
        expect(Net::HTTP.get_response(URI(url)).code).to eq("401")
        login = Net::HTTP.post_form(URI(action), "multitenant_key" => key)
        expect([login.code, login["Location"], login["Set-Cookie"]]).to match(["303", "./", /\Amultitenant_gate_\h{8}=\w+; HttpOnly/])
        expect(Net::HTTP.get_response(URI(url), { "Cookie" => login["Set-Cookie"].split(";").first }).code).to eq("200")

        text = by_job.fetch(content["job_id"])
        expect(text).to include("mtowner: Reading list")
        expect(text).not_to include("Undetermined") # the content share carries its node
        expect(text).not_to include("<script>alert(1)</script>")

        llm_card = by_job.fetch(llm["job_id"])
        ollama = llm_card[%r{<th>Ollama URL</th><td><a href="(http://[^"]+)"}, 1]
        llm_key = llm_card[%r{<th>API key</th><td><details><summary>Show</summary><code>(\h{32})</code>}, 1]
        expect(llm_card).to include("<th>OpenAI base URL</th><td><a href=\"#{ollama}/v1\"")
        expect(llm_card).to include("<td>tiny:1b&lt;i&gt;&quot;&amp;&#39;&lt;/i&gt;</td>")
        expect(llm_card).not_to include("<i>")
        tags = URI("#{ollama}/api/tags")
        expect(Net::HTTP.get_response(tags).code).to eq("401")
        listed = Net::HTTP.get_response(tags, { "Authorization" => "Bearer #{llm_key}" })
        expect(JSON.parse(listed.body)["models"].map { |m| m["name"] }).to eq([MODEL])

        outsider = dashboard(version, "mtoutsider", env: NO_REFRESH).start
        expect(outsider.cards).to eq({})
        expect(owner.restart.cards.keys).to contain_exactly(board["id"], content["id"], llm["id"])
      end

      it "every app is in the real dashboard's menus; the owner's own card says what is shared, with whom, until when, to how many, and stops sharing without ending the job" do
        owner = dashboard(version, "mtowner").start
        home = owner.get("/").body
        launchable = %w[llm vllm database dashboard content jupyter chat]
        launchable.each { |app| expect(home).to include("/batch_connect/sys/multitenant-#{app}/session_contexts/new") }
        expect(home).not_to match(%r{/batch_connect/sys/multitenant-delivery_})
        expect(home).to include("Multitenant", "Share a service", "Use a shared service")

        vllm = launch(owner, "multitenant-vllm", share_fields("vllm_model" => "org/tiny-model", "vllm_gpus" => "0", "vllm_max_model_len" => "4096",
                                                              "vllm_max_num_seqs" => "8", "mt_allow" => "mtmember", "mt_expires_hours" => "2"))
        wait_shared(vllm["job_id"])
        # The owner's dashboard finds its own share at its next live refresh (TTL 5 s here).
        card = poll("the owner's card to say the vLLM job is shared", timeout: 30) { owner.cards[vllm["id"]].then { |c| c if c&.include?("Shared now.") } }
        expect(card).to include("vLLM (a card on each member", "group mtclass, shown only to mtmember")
        expect(card).to match(%r{Members who see it now</th><td>1 })
        until_at = Time.strptime(card[%r{<th>Until</th><td>(\d{4}-\d\d-\d\d \d\d:\d\d)}, 1], "%Y-%m-%d %H:%M").to_i
        expect(until_at).to be_within(240).of(Time.now.to_i + 7200 - 60) # published a little before now, shown to the minute
        # For the owner's own use: the base URL and key from the job's connection.yml, and they work.
        base = card[%r{<th>OpenAI base URL</th><td><a href="(http://[^"]+/v1)"}, 1]
        key = card[%r{<th>API key</th><td><details><summary>Show</summary><code>(\h{32})</code>}, 1]
        models = Net::HTTP.get_response(URI("#{base}/models"), { "Authorization" => "Bearer #{key}" })
        expect(JSON.parse(models.body)["data"].map { |m| m["id"] }).to eq(["org/tiny-model"])

        member = dashboard(version, "mtmember", env: NO_REFRESH).start
        expect(member.cards.values.join).to include("mtowner: vLLM")
        # Stop sharing, as the card says, as the owner: the job runs on, no longer shared.
        command = CGI.unescapeHTML(card[%r{<pre><code>([^<]*JobName=[^<]*)</code></pre>}, 1])
        _, err, st = run_as("mtowner", *Shellwords.split(command))
        expect(st).to be_success, err
        expect(job_state(vllm["job_id"])).to eq("RUNNING")
        expect(job_name(vllm["job_id"])).not_to start_with("mt|")
        expect(member.restart.cards.values.join).not_to include("mtowner: vLLM")
        poll("the owner's card to say it is no longer shared", timeout: 30) { owner.cards[vllm["id"]].to_s.include?("Not shared now") }
      end

      it "the Jupyter client's real form lists the LLM shared while the dashboard runs, by its share, and its job gets the URL in its environment" do
        member = dashboard(version, "mtmember").start
        form = "/batch_connect/sys/multitenant-jupyter/session_contexts/new"
        options = -> { member.get(form).body.scan(/<option[^>]*value="([^"]*)"[^>]*>([^<]*)</) }
        expect(options.call.map(&:last)).to eq(["No shared LLM is running for you"])

        owner = dashboard(version, "mtowner").start
        llm = launch(owner, "multitenant-llm", share_fields("ollama_model" => "tiny:1b"))
        wait_shared(llm["job_id"])
        # The live refresh (TTL 5 s here) finds it; OOD 4.2 must also render its cached form again.
        # The harness serves two clusters (hpc and beta), so the label names the job's cluster.
        label = "mtowner: Ollama_API (job #{llm["job_id"]} on mtcluster)"
        share = poll("the running dashboard's Jupyter form to list the LLM", timeout: 30) { options.call.find { |_, l| l == label }&.first }
        expect(share).to eq("#{llm["job_id"]}@mtcluster")

        job = launch(member, "multitenant-jupyter", { "cluster" => "hpc", "llm_share" => share, "bc_num_hours" => "1" })
        # The job script OOD rendered runs as the member; its output is the session's output.log.
        log = File.join(home("mtmember"), "ondemand/data/sys/dashboard/batch_connect/sys/multitenant-jupyter/output", job["id"], "output.log")
        text = poll("the Jupyter job to report its LLM", timeout: 60) { File.file?(log) && File.read(log)[/^Using the shared LLM at .*$/] }
        # The form's select names the share; the rendered job script carries its URL, model and key (in its environment).
        expect(text).to match(%r{\AUsing the shared LLM at http://[^/]+:\d+/v1 \(tiny:1b\) \(with the share key\)\z})
      end

      it "Delete on a delivered card dismisses it, the job keeps running (also for a Slurm operator), and it stays dismissed across starts" do
        owner = dashboard(version, "mtowner").start
        board = launch_board(owner, title: "Board")
        wait_shared(board["job_id"])
        system("sacctmgr", "-i", "modify", "user", "mtmember", "set", "adminlevel=Operator", out: File::NULL, exception: true)
        member = dashboard(version, "mtmember").start
        id, card = member.cards.first
        expect(button(card, "delete")).to eq(["/batch_connect/sessions/#{id}", "delete"])

        res = press(member, card, "delete")
        expect(res.code).to eq("302")
        expect(member.cards).to eq({})
        expect(job_state(board["job_id"])).to eq("RUNNING")
        expect(member.restart.cards).to eq({})
        expect(member.restart.cards).to eq({})
        expect(job_state(board["job_id"])).to eq("RUNNING")
      ensure
        system("sacctmgr", "-i", "modify", "user", "mtmember", "set", "adminlevel=None", out: File::NULL)
      end

      it "Cancel on a delivered card dismisses it too; when the job ends the card goes, never left Completed or Running" do
        owner = dashboard(version, "mtowner").start
        first = launch_board(owner, title: "First")
        second = launch_board(owner, title: "Second")
        [first, second].each { |r| wait_shared(r["job_id"]) }
        # Sites turn the Cancel button on with OOD_CANCEL_SESSION_ENABLED (config/configuration_singleton.rb).
        member = dashboard(version, "mtmember", env: NO_REFRESH.merge("OOD_CANCEL_SESSION_ENABLED" => "true")).start
        cards = member.cards
        ids = cards.to_h { |id, html| [html[/\((\d+)\)/, 1], id] }
        card = cards.fetch(ids.fetch(first["job_id"]))
        expect(button(card, "cancel")).to eq(["/batch_connect/sessions/#{ids.fetch(first["job_id"])}/cancel", "post"])

        res = press(member, card, "cancel")
        expect(res.code).to eq("302")
        expect(member.cards.keys).to eq([ids.fetch(second["job_id"])])
        expect(job_state(first["job_id"])).to eq("RUNNING")
        expect(member.restart.cards.keys).to eq([ids.fetch(second["job_id"])])

        system("scancel", second["job_id"], exception: true)
        poll("job #{second["job_id"]} to leave the queue", timeout: 60) { job_state(second["job_id"]).nil? }
        # The first page after the end may show it Completed (OOD's own handling, between refreshes);
        # the next one must not show it at all.
        statuses = member.cards.values.map { |c| status_of(c) }
        expect(statuses).to satisfy { |s| s.empty? || s == ["Completed"] }
        expect(member.cards).to eq({})
      end

      it "the card goes away on the next live refresh when the share ends: expired, member removed, key rotated away" do
        member = dashboard(version, "mtmember")
        lasting = submit_share(owner: "mtowner", app: "Lasting", args: ["--method", "card", "--delivery", "sys/multitenant-delivery_default"], wait: false)
        expiring = submit_share(owner: "mtowner", app: "Expiring", args: ["--method", "card", "--delivery", "sys/multitenant-delivery_default", "--expires-in", "30s"], wait: false)
        wait_published(lasting, expiring)
        member.start
        titles = -> { member.cards.values.map { |c| c[/mtowner: (\w+)/, 1] }.sort }
        expect(titles.call).to eq(%w[Expiring Lasting])
        poll("the expired share's card to go", timeout: 90) { titles.call == %w[Lasting] }
        expect(job_state(expiring)).to eq("RUNNING")

        begin
          system("gpasswd", "-d", "mtmember", "mtclass", out: File::NULL, exception: true)
          poll("the card to go once the member left the group", timeout: 30) { titles.call.empty? }
        ensure
          system("gpasswd", "-a", "mtmember", "mtclass", out: File::NULL)
        end
        poll("the card to come back with the membership", timeout: 30) { titles.call == %w[Lasting] }

        key = File.join(key_dir, "mtclass.key")
        saved = File.read(key)
        begin
          fresh = Dir.mktmpdir
          MultiTenant::KeyDir.new(fresh).generate(group: "mtclass")
          File.write(key, File.read(File.join(fresh, "mtclass.key")))
          poll("the card to go once its key was rotated away", timeout: 30) { titles.call.empty? }
          expect(job_state(lasting)).to eq("RUNNING")
        ensure
          File.write(key, saved)
          FileUtils.rm_rf(fresh)
        end
      end

      it "a hostile queue and failing or hanging Slurm commands: every dashboard boots and serves; the log has one line per problem" do
        hostile = vectors.filter_map { |_, v| v["name"] }.map { |n| n.sub(/\A[^|]*\|[^|]*\|/, "mt|mtclass|") }
        hostile += ["mt|mtclass|1.#{"A" * 900}", "mt|mtclass|<script>alert(1)</script>", "mt|mtclass|1.x\n2|mtowner|multitenant|forged",
                    "mt|mtclass|9.future", "mt|mtclass|1.#{"%" * 40}"]
        hostile = hostile.select { |n| n.size <= 1024 } # Slurm's own limit: a longer name never reaches the queue
        ids = hostile.map do |name|
          out, err, = run_as("mtowner", "sbatch", "--parsable", "--wckey=multitenant", "-J", name, "-o", "/dev/null", "--wrap", "sleep 600")
          raise "sbatch: #{err}" unless out.strip.match?(/\A\d+\z/)

          (@jobs ||= []) << out.strip
          out.strip
        end
        poll("the hostile jobs to run", timeout: 60) { ids.all? { |id| job_state(id) == "RUNNING" } }

        member = dashboard(version, "mtmember", env: NO_REFRESH).start
        expect(member.get("/").code).to eq("200")
        expect(member.get("/batch_connect/sessions").code).to eq("200")
        expect(member.cards).to eq({})
        lines = member.log_lines.grep(/multitenant:/)
        # Names in the first implementation's format while it is not read: one line of information, at
        # INFO, counting them; not a problem per job.
        notes = lines.grep(/INFO .*multitenant: (\d+) running job\(s\) publish in the first implementation's format/)
        expect(notes.size).to eq(1), lines.join
        legacy = notes.first[/multitenant: (\d+) running job/, 1].to_i
        expect(legacy).to be_between(1, ids.size - 1)
        problems = lines - notes
        # At most 50 problem lines (MAX_ERRORS, ext/multitenant-core/src/discover.rs), then one that says more were left out.
        cap = 50
        per_job = ids.map { |id| problems.grep(/multitenant: job #{id} \(mtowner\): /).size }
        expect(per_job).to all(be <= 1), lines.join
        expect(per_job.sum).to eq([ids.size - legacy, cap].min), lines.join
        expect(problems.grep(/… more problems not listed/).size).to eq(ids.size - legacy > cap ? 1 : 0)
        expect(problems.size).to eq([ids.size - legacy, cap].min + (ids.size - legacy > cap ? 1 : 0))
        expect(lines).to all(match(/\A[^\n]{1,600}\n\z/))

        Dir.mktmpdir do |bin|
          File.chmod(0o755, bin)
          # Discovery runs Slurm's commands as OOD does, from the cluster's job.bin: a clusters.d whose
          # entries name this bin (OOD_CLUSTERS, OOD's own setting).
          clusters = File.join(bin, "clusters.d")
          Dir.mkdir(clusters, 0o755)
          { "hpc-multitenant" => { "bin" => bin }, "beta-multitenant" => { "bin" => "/usr/bin", "cluster" => "mtbeta" } }.each do |id, job|
            doc = { "v2" => { "metadata" => { "hidden" => true }, "job" => { "adapter" => "slurm" }.merge(job) } }
            File.write(File.join(clusters, "#{id}.yml"), YAML.dump(doc))
          end
          fake = NO_REFRESH.merge("OOD_CLUSTERS" => clusters)
          File.write(File.join(bin, "squeue"), "#!/bin/sh\necho 'slurm_load_jobs error: Socket timed out on send/recv operation' >&2\nexit 1\n", perm: 0o755)
          failing = dashboard(version, "mtmember", env: fake).start
          expect(failing.get("/batch_connect/sessions").code).to eq("200")
          expect(failing.log_lines.grep(/multitenant: cluster mtcluster: squeue: slurm_load_jobs error: Socket timed out/).size).to eq(1)
          failing.stop

          File.write(File.join(bin, "squeue"), "#!/bin/sh\nexec sleep 600\n", perm: 0o755)
          t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
          hanging = dashboard(version, "mtmember", env: fake.merge("MULTITENANT_TIMEOUT" => "2")).start
          expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).to be < 60
          expect(hanging.get("/").code).to eq("200")
          # One line for the cluster that hangs; the other cluster answered.
          expect(hanging.log_lines.grep(/multitenant:/)).to eq(hanging.log_lines.grep(/multitenant: cluster mtcluster: squeue: no answer within 2 s/))
          expect(hanging.log_lines.grep(/multitenant:/).size).to eq(1)
        end
      end

      it "two Slurm clusters behind one OOD: each share is a card of its own cluster, also with the same job id; Delete leaves both jobs running" do
        n = common_next_job_id("mtcluster", "mtbeta")
        card = ["--method", "card", "--delivery", "sys/multitenant-delivery_default"]
        here = submit_share_on("mtcluster", owner: "mtowner", app: "On_hpc", args: card, jobid: n)
        there = submit_share_on("mtbeta", owner: "mtowner", app: "On_beta", args: card, jobid: n)
        member = dashboard(version, "mtmember", env: NO_REFRESH).start
        cards = member.cards
        expect(cards.size).to eq(2), member.log_lines.grep(/multitenant/).join
        db = db_records("mtmember").to_h { |r| [r["id"], r] }
        expect(cards.keys.map { |id| [db[id]["cluster_id"], db[id]["job_id"]] })
          .to contain_exactly(["hpc-multitenant", here], ["beta-multitenant", there])
        # OOD asks each card's own cluster (squeue -M mtbeta for beta's): both are Running.
        expect(cards.values.map { |html| status_of(html) }).to eq(%w[Running Running])
        cards.each_value { |html| expect(press(member, html, "delete").code).to eq("302") }
        expect(member.restart.cards).to eq({})
        expect([job_state(here), running_on?("mtbeta", there)]).to eq(["RUNNING", true])
      end

      it "a data root as sites have it: OOD under umask 0007 and batch_connect moved to project space by the user's symlink" do
        job = submit_share(owner: "mtowner", app: "Project", args: ["--method", "card", "--delivery", "sys/multitenant-delivery_default"])
        root = File.join(home("mtmember"), "ondemand/data/sys/dashboard")
        project = File.join(home("mtmember"), "project-space/ood")
        wipe_as("mtmember", File.join(home("mtmember"), "project-space"))
        _, err, status = run_as("mtmember", "sh", "-c", %(umask 0007 && mkdir -p "$1" "$2" && ln -s "$2" "$1/batch_connect"), "sh", root, project, chdir: "/")
        raise err unless status.success?

        member = dashboard(version, "mtmember", env: NO_REFRESH.merge("MT_PUN_UMASK" => "0007")).start
        cards = member.cards
        expect(cards.size).to eq(1), member.log_lines.grep(/multitenant/).join
        id, html = cards.first
        expect(status_of(html)).to eq("Running")
        # OOD made db/ under the site's umask; the card went through the user's symlink into project space.
        expect(File.stat(File.join(project, "db")).mode & 0o777).to eq(0o770)
        expect(File.exist?(File.join(project, "db", id))).to be(true)
        expect(member.log_lines.grep(/multitenant:/)).to eq([])
        expect(press(member, html, "delete").code).to eq("302")
        expect(member.restart.cards).to eq({})
        expect(job_state(job)).to eq("RUNNING")
      end

      it "OOD_DATAROOT and OOD_PER_CLUSTER_DATAROOT as sites set them: cards show and dismiss" do
        job = submit_share(owner: "mtowner", app: "Elsewhere", args: ["--method", "card", "--delivery", "sys/multitenant-delivery_default"])
        root = File.join(home("mtmember"), "site-data")
        wipe_as("mtmember", root)
        member = dashboard(version, "mtmember", env: NO_REFRESH.merge("OOD_DATAROOT" => root, "OOD_PER_CLUSTER_DATAROOT" => "1")).start
        cards = member.cards
        expect(cards.size).to eq(1)
        id, html = cards.first
        expect(status_of(html)).to eq("Running")
        expect(Dir[File.join(root, "batch_connect/hpc-multitenant/sys/multitenant-delivery_default/output", id, "connection.yml")].size).to eq(1)
        expect(press(member, html, "delete").code).to eq("302")
        expect(member.restart.cards).to eq({})
        expect(job_state(job)).to eq("RUNNING")
      end
    end
  end
end
