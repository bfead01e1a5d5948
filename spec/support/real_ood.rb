# frozen_string_literal: true

require "net/http"
require "uri"
require "tmpdir"
require "open3"
require "cgi"

# The REAL Open OnDemand dashboard (spec/ood/realood) for the specs: one process per user, as each
# user has their own PUN, each on its own port. Starting one is a "dashboard start".
module RealOOD
  SCRIPT = File.join(ROOT, "spec/ood/realood")
  ROOT_DIR = ENV.fetch("MT_OOD_ROOT", "/var/tmp/multitenant-ood")
  VERSIONS = { "4.2" => 4200, "3.1" => 3100 }.freeze
  PREFIX = "/pun/sys/dashboard"
  USERS = %w[mtowner mtmember mtprimary mtoutsider mtdefault].freeze

  # Builds the tree and installs the gem into it once per version and run; nil or why it failed.
  def self.ready!(version, key_dir)
    @ready ||= {}
    @ready[version] ||= begin
      env = { "MT_OOD_ENV" => "MULTITENANT_KEY_DIR=#{key_dir} MULTITENANT_TTL=5 MULTITENANT_OLLAMA=#{File.join(ROOT, "spec/ood/fake-ollama")} " \
                                  "MULTITENANT_VLLM=#{File.join(ROOT, "spec/ood/fake-vllm")} MULTITENANT_CHAT_PYTHON=#{GradioHelpers::PYTHON} " \
                                  "MULTITENANT_NODE_PROXY=direct" } # the harness has no node proxy: links go straight to the node
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      out, status = Open3.capture2e(env, SCRIPT, "install", version)
      took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
      warn out.lines.grep(/\Arealood: built/).join, format("realood: OOD %s built and installed in %.1f s", version, took) if status.success?
      status.success? ? :ok : "realood install #{version} failed:\n#{out}"
    end
    @ready[version] == :ok ? nil : @ready[version]
  end

  # One user's dashboard process.
  class Dashboard
    attr_reader :version, :user, :port, :log

    def initialize(version, user, env: {})
      @version = version
      @user = user
      @port = VERSIONS.fetch(version) + (USERS.index(user) || (10 + Etc.getpwnam(user).uid % 80))
      @env = env
      @log = File.join(ROOT_DIR, version, "logs", "#{user}.log")
      @cookies = {}
    end

    def base = "http://127.0.0.1:#{port}#{PREFIX}"

    # Starts the process and waits until `/` answers 200; returns self.
    def start
      stop
      raise "port #{port} already answers: another dashboard of #{user} is running" if up?

      @cookies = {}
      File.write(log, "")
      @pid = Process.spawn(SCRIPT, "serve", version, user, port.to_s, *@env.map { |k, v| "#{k}=#{v}" },
                           out: [log, "a"], err: [log, "a"], pgroup: true)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 120
      loop do
        return self if up?
        if Process.waitpid(@pid, Process::WNOHANG)
          @pid = nil
          raise "#{user}'s dashboard exited:\n#{File.read(log)[-3000..]}"
        end
        raise "#{user}'s dashboard did not answer in 120 s:\n#{File.read(log)[-3000..]}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.25
      end
    end

    def restart = start

    def up?
      get("/").code == "200"
    rescue SystemCallError, Net::ReadTimeout, Net::OpenTimeout, EOFError
      false
    end

    def stop
      return unless @pid

      signal("TERM")
      begin
        Timeout.timeout(20) { Process.wait(@pid) }
      rescue Timeout::Error
        signal("KILL")
        Process.wait(@pid)
      rescue Errno::ECHILD
        nil
      end
      @pid = nil
    end

    def get(path, headers = {}) = request(Net::HTTP::Get.new(uri(path), headers))

    # A form POST as the browser sends it: Rails' CSRF token from the page that holds the form.
    def post(path, params, from: path)
      token = csrf_token(from)
      req = Net::HTTP::Post.new(uri(path))
      req.set_form_data(params.merge("authenticity_token" => token))
      request(req)
    end


    def csrf_token(path)
      body = get(path).body
      CGI.unescapeHTML(body[/<meta name="csrf-token" content="([^"]+)"/, 1] || raise("no CSRF token on #{path}"))
    end

    # The sessions page's cards: { "<session id>" => html of that card }.
    def cards
      html = get("/batch_connect/sessions").body
      starts = html.enum_for(:scan, /<div[^>]*id="id_([0-9a-f-]{36})"/).map { [Regexp.last_match(1), Regexp.last_match.begin(0)] }
      starts.each_with_index.to_h do |(id, at), i|
        [id, html[at...(starts[i + 1]&.last || html.size)]]
      end
    end

    def log_lines = File.read(log).lines

    private

    def signal(name)
      Process.kill(name, -@pid)
    rescue Errno::ESRCH, Errno::EPERM
      nil
    end

    def uri(path) = URI("#{base}#{path}")

    def request(req)
      req["Cookie"] = @cookies.map { |k, v| "#{k}=#{v}" }.join("; ") unless @cookies.empty?
      res = Net::HTTP.start(req.uri.host, req.uri.port, open_timeout: 5, read_timeout: 60) { |h| h.request(req) }
      Array(res.get_fields("set-cookie")).each do |c|
        k, v = c.split(";", 2).first.split("=", 2)
        @cookies[k] = v
      end
      res
    end
  end

  # A PNG of a page the dashboard serves, taken by Debian's headless Chromium (apt-get install chromium).
  def self.screenshot(url, path, width: 1200, height: 800)
    chromium = %w[/usr/bin/chromium /usr/bin/chromium-browser].find { |c| File.executable?(c) } or
      raise "no Chromium: apt-get install chromium"
    Dir.mktmpdir do |profile|
      out, status = Open3.capture2e(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                    "--hide-scrollbars", "--user-data-dir=#{profile}", "--window-size=#{width},#{height}",
                                    "--virtual-time-budget=5000", "--screenshot=#{File.expand_path(path)}", url)
      raise "chromium failed: #{out}" unless status.success? && File.size?(path)
    end
    path
  end

  # Helpers for specs tagged :real_ood.
  module Helpers
    def require_real_ood!(version)
      require_cluster!
      why = RealOOD.ready!(version, key_dir)
      return unless why
      raise "CI=true: the real-dashboard specs must run: #{why}" if ENV["CI"] == "true"

      skip why
    end

    # A user has one dashboard process at a time (one PUN): a new one replaces the old.
    def dashboard(version, user, env: {})
      @dashboards ||= []
      @dashboards.select { |d| d.user == user && d.version == version }.each(&:stop)
      @dashboards << RealOOD::Dashboard.new(version, user, env: env)
      @dashboards.last
    end

    def stop_dashboards
      (@dashboards || []).each(&:stop)
      @dashboards = []
    end

    def home(user) = Etc.getpwnam(user).dir

    # Launches a batch connect app through OOD's own form POST, as the browser sends it; returns the new
    # session's db record once OOD wrote it (its job id is then in the specs' job list, to be cancelled).
    def launch(dash, app, fields)
      path = "/batch_connect/sys/#{app}/session_contexts"
      before = db_records(dash.user).map { |r| r["id"] }
      res = dash.post(path, fields.to_h { |k, v| ["batch_connect_session_context[#{k}]", v] }, from: "#{path}/new")
      unless res.code == "302"
        alert = res.body.to_s[%r{class="alert[^"]*"[^>]*>(.*?)</div>}m, 1].to_s.gsub(/<[^>]+>|\s+/, " ").strip
        raise "launching #{app} answered #{res.code}: #{alert}"
      end
      rec = poll("#{app}'s session file", timeout: 30) { db_records(dash.user).find { |r| !before.include?(r["id"]) } }
      (@jobs ||= []) << rec["job_id"]
      rec
    end

    # The service apps' form fields, sharing with mtclass as a card.
    def share_fields(extra = {})
      { "cluster" => "hpc", "mt_group" => "mtclass", "mt_method" => "card", "mt_delivery" => "sys/multitenant-delivery_default",
        "mt_expires_hours" => "", "bc_num_hours" => "1" }.merge(extra)
    end

    # Waits until the job ran the app's templates and renamed itself with its sealed share.
    def wait_shared(job_id)
      poll("job #{job_id} to run its templates and publish", timeout: 120) do
        raise "job #{job_id} ended before publishing; its output:\n#{job_output(job_id)}" unless job_state(job_id)

        job_name(job_id).start_with?("mt|mtclass|2.")
      end
    end

    # The session's output.log (OOD's batch_connect/<app>/output/<session id>/) of the job, for a failure message.
    def job_output(job_id)
      RealOOD::USERS.each do |user|
        root = File.join(home(user), "ondemand/data/sys/dashboard/batch_connect")
        rec = db_records(user).find { |r| r["job_id"].to_s == job_id.to_s } or next
        log = Dir[File.join(root, "**/output", rec["id"], "output.log")].first
        return log ? File.read(log)[-4000..] || File.read(log) : "(no output.log)"
      end
      "(no session of this job)"
    end

    # squeue's state of the job, or nil once Slurm no longer lists it.
    def job_state(job_id)
      out, = Open3.capture2("squeue", "-h", "-j", job_id.to_s, "-o", "%i %T")
      out.lines.map(&:split).find { |id, _| id == job_id.to_s }&.last
    end

    # A fresh start for a user: no data root (OOD's first ever start for them).
    def wipe_dataroot(user) = wipe_as(user, File.join(home(user), "ondemand"))

    # Removes a tree the user owns as that user: root never walks a tree a user can change under it.
    def wipe_as(user, path)
      _, err, status = run_as(user, "rm", "-rf", "--", path, chdir: "/")
      raise "rm -rf #{path} as #{user}: #{err}" unless status.success?
    end

    def db_records(user, dataroot: File.join(home(user), "ondemand/data/sys/dashboard"))
      Dir[File.join(dataroot, "batch_connect/db/*")].reject { |f| f.end_with?(".bak") }.map { |f| JSON.parse(File.read(f)) }
    end
  end
end
