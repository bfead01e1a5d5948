# frozen_string_literal: true

module MultiTenant
  class << self
    # One line per problem met by the last discovery (for admin tools); empty when all went well.
    def errors
      @errors ||= []
    end

    # Stderr lines the scheduler printed on success in the last discovery (logged; not problems).
    def warnings
      @warnings ||= []
    end

    # Information from the last discovery (jobs in the first implementation's format while it is not
    # read); each line is logged once per process, at info level.
    def notes
      @notes ||= []
    end

    # What the last discovery did to the viewer's cards ({"created" => [ids], ...}), or nil.
    attr_reader :cards

    attr_writer :logger

    def logger
      @logger ||= defined?(Rails) && Rails.respond_to?(:logger) && Rails.logger ? Rails.logger : Logger.new($stderr)
    end

    # Finds the shares this user may open, fills MultiTenant.specs and reconciles the user's cards
    # under dataroot (none when dataroot is nil). Never raises: problems go to MultiTenant.errors and
    # the log, and whatever could be found is returned.
    def discover(dataroot: nil, per_cluster: false, config: nil, now: nil)
      discover!(dataroot: dataroot, per_cluster: per_cluster, config: config, now: now, strict: false)
    rescue Exception => e # rubocop:disable Lint/RescueException -- runs inside every dashboard start
      raise if e.is_a?(SignalException) || e.is_a?(SystemExit)

      @errors = ["#{e.class}: #{e.message}"]
      log("discovery failed: #{e.message}")
      specs
    end

    # One line per problem, whatever the message holds (Ruby's error highlighting adds lines; control
    # characters go too), prefixed once with "multitenant: " (the default logger has no progname).
    def log(line, level: :warn)
      logger.public_send(level, "multitenant: #{line.to_s.gsub(/[[:cntrl:]]+/, " ").strip}")
    rescue StandardError
      nil
    end

    # Like discover, but raises MultiTenant::Error when anything went wrong (tests, admin tasks).
    def discover!(dataroot: nil, per_cluster: false, config: nil, now: nil, strict: true)
      native!
      config ||= Config.from_env
      config, why, silent = accounting_visible(config)
      # slurmdbd gave no answer in a whole MULTITENANT_TIMEOUT: sacct would wait as long again.
      result = silent ? unanswered(silent) : Discovery._run(config.native(dataroot: dataroot, per_cluster: per_cluster, now: now))
      # What this run could not decide keeps the choice the last run offered.
      @specs = undecided(specs, result["unknown"]).merge(result["specs"])
      @warnings = [*why, *result["warnings"]]
      @notes = result["notes"]
      unless strict
        log(why) if why
        result["warnings"].each { |line| log("scheduler said: #{line}") }
        @noted = {} if !@noted || @noted.size > 100
        @notes.each { |line| @noted[line] ||= log(line, level: :info) || true }
      end
      @cards = result["cards"]
      @errors = result["errors"] + (@cards ? @cards["errors"] : [])
      @errors.each { |line| log(line) } unless strict
      raise Error, "discovery for #{result["viewer"]}: #{@errors.join("; ")}" if strict && !@errors.empty?

      @specs
    end

    # slurmdbd's own PrivateData=jobs makes `sacct --allusers` return only the caller's jobs, without an
    # error: strategy sacct would then find nothing. Discovery then asks squeue, as OOD's own pages do,
    # and says why. [config to use, the warning or nil, the reason when slurmdbd did not answer in time
    # or nil]; slurmdbd is asked once per process and settings.
    def accounting_visible(config)
      return [config, nil, nil] unless config.strategy.to_s.start_with?("sacct")

      native = config.native(dataroot: nil, per_cluster: false)
      target = native["targets"].find { |t| !t["problem"] } || { "name" => nil }
      @accounting_private ||= {}
      hidden = @accounting_private.fetch([target, native["bin_dir"]]) do |key|
        out = Discovery._command("sacctmgr", %w[show configuration], native.merge("targets" => [target]))
        dbd = out.split(/^SlurmDBD configuration:.*$/, 2)[1].to_s
        @accounting_private[key] = dbd[/^PrivateData\s*=\s*(.*)$/, 1].to_s.split(",").map(&:strip).include?("jobs")
      rescue SchedulerError => e
        return [config, nil, "#{"cluster #{target["name"]}: " if target["name"]}#{e.message}"] if e.message.include?("no answer within")

        false # cannot tell: keep the site's choice
      rescue Error
        false
      end
      return [config, nil, nil] unless hidden

      settings = Config::DEFAULTS.keys.to_h { |k| [k, config.public_send(k)] }.merge(strategy: "squeue")
      [Config.new(**settings), "MULTITENANT_STRATEGY=sacct, but slurmdbd's PrivateData=jobs hides other users' jobs " \
                               "from sacct: asking squeue instead (remove jobs from slurmdbd's PrivateData, or set MULTITENANT_STRATEGY=squeue)", nil]
    end

    # A discovery result for a run that asked nothing: nothing decided, one reason.
    def unanswered(reason)
      viewer = begin
        Etc.getpwuid(Process.uid).name
      rescue ArgumentError
        Process.uid.to_s # the passwd lookup failed too (LDAP down): the uid says who
      end
      { "viewer" => viewer, "specs" => {}, "errors" => [reason], "warnings" => [], "notes" => [],
        "unknown" => { "all" => true, "clusters" => [], "groups" => [], "jobs" => [] }, "cards" => nil }
    end

    # The shares in `shares` that `unknown` (from the native discovery) says this run could not decide.
    def undecided(shares, unknown)
      return shares if unknown["all"]

      jobs = unknown["jobs"].to_h { |job| [job, true] }
      shares.select do |_, s|
        info = s["info"] || {}
        unknown["clusters"].include?(info["cluster"]) || unknown["groups"].include?(info["group"]) ||
          jobs.key?([info["cluster"], s.dig("connection", "jobid")])
      end
    end

    # [[label, value], …] for a select in a form: every share carrying the connection value `key`.
    #   MultiTenant.options_for("ollama_url")  # => [["alice: Ollama_API (job 12)", "http://node1:4000"]]
    # (with several clusters: "alice: Ollama_API (job 12 on beta)")
    # The owner comes first in the label (an app name cannot pose as another owner), and characters a
    # YAML form cannot hold (controls, noncharacters) are dropped.
    def options_for(key, shares = specs)
      shares.filter_map do |id, s|
        value = s.dig("connection", key.to_s)
        next unless value && printable(value) == value

        [share_label(id, s), printable(value)]
      end
    end

    # [[label, key], …] for a client app's select: every running LLM shared with this user, Ollama or
    # vLLM (an http(s) openai_base_url or ollama_url: the first implementation's Ollama shares publish
    # only the latter), the value the share's key in specs ("<job id>", or "<job id>@<cluster>" with
    # several clusters).
    #   MultiTenant.llm_choices  # => [["alice: Ollama_API (job 12)", "12"]]
    # A key names one job, whose owner and node discovery checked; a URL is its publisher's text, which
    # any member may copy into a share of their own. MultiTenant::Apps.llm_access takes the value back.
    def llm_choices(shares = specs)
      shares.filter_map do |id, s|
        next if Apps.llm_access(id.to_s, shares)[:base_url].empty? || printable(id) != id.to_s

        [share_label(id, s), id.to_s]
      end
    end

    # The running Ollama LLMs shared with this user, [label, ollama_url] (only http(s) URLs): the
    # first implementation's shape, for forms written for it. Ours use llm_choices.
    def llm_options(shares = specs)
      options_for("ollama_url", shares).select { |_, url| !Apps.http_url(url).empty? }
    end

    # The running OpenAI-compatible LLMs shared with this user (Ollama and vLLM shares both publish
    # openai_base_url), [label, openai_base_url] (only http(s) URLs). Ours use llm_choices.
    def openai_options(shares = specs)
      options_for("openai_base_url", shares).select { |_, url| !Apps.http_url(url).empty? }
    end

    # "<owner>: <app> (job <id>)", or "(job <id> on <cluster>)" with several clusters (the key is then
    # "<job id>@<cluster>"): the owner first, so an app name cannot pose as another owner; the app name as
    # published (info "app"; "mta" is its form-safe rendering for the first implementation's forms, which
    # ours, writing labels as JSON, do not need).
    def share_label(id, share)
      job = id.to_s.include?("@") ? "#{share.dig("connection", "jobid")} on #{share.dig("info", "cluster")}" : id
      printable("#{share.dig("info", "user")}: #{share.dig("info", "app") || share.dig("accounting", "mta")} (job #{job})")
    end

    # Without controls, noncharacters, or the line and paragraph separators YAML reads as line breaks.
    def printable(text) = text.to_s.scrub("").gsub(/[\p{C}\p{Zl}\p{Zp}\u{FFFE}\u{FFFF}]/, "")
  end
end
