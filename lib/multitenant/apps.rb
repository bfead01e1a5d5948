# frozen_string_literal: true

require "etc"
require "shellwords"
require "uri"

module MultiTenant
  # Helpers for the service and client app templates shipped in ood/apps. The form's choices are
  # validated here and shell-quoted, so no template repeats or weakens them.
  module Apps
    DELIVERIES = %w[sys/multitenant-delivery_default sys/multitenant-delivery_debug sys/multitenant-delivery_content].freeze
    NO_GROUP = ["No group of yours has a multitenant key: ask your admin", ""].freeze

    module_function

    # The publisher on the compute nodes (MULTITENANT_PUBLISHER in the dashboard's env, else on PATH).
    def publisher = ENV.fetch("MULTITENANT_PUBLISHER", "mtshare")

    def wckey = ENV.fetch("MULTITENANT_WCKEY", "multitenant")

    # The ollama command on the compute nodes (MULTITENANT_OLLAMA in the dashboard's env, else on PATH).
    def ollama = ENV.fetch("MULTITENANT_OLLAMA", "ollama")

    # The vllm command on the compute nodes (MULTITENANT_VLLM in the dashboard's env, else on PATH).
    def vllm = ENV.fetch("MULTITENANT_VLLM", "vllm")

    # Where vLLM listens behind its gate (MULTITENANT_VLLM_LISTEN in the dashboard's env): "unix", the
    # default and any value but "loopback", a Unix socket in a private directory (mktemp -d, 0700), which
    # no other user's process on the node can connect to (vllm serve --uds, vLLM 0.9 and later,
    # vllm/entrypoints/openai/cli_args.py FrontendArgs.uds); "loopback", 127.0.0.1, for an older vLLM,
    # where any process on the node reaches it around the gate.
    def vllm_listen = ENV["MULTITENANT_VLLM_LISTEN"].to_s.strip == "loopback" ? "loopback" : "unix"

    # The Python on the compute nodes that runs the chat client, with the gradio and openai packages
    # (MULTITENANT_CHAT_PYTHON in the dashboard's env, e.g. a venv's bin/python; else python3 on PATH).
    def chat_python = ENV.fetch("MULTITENANT_CHAT_PYTHON", "python3")

    # The directory of the database server's programs on the compute nodes, for engine "postgresql"
    # (initdb, postgres, psql: MULTITENANT_POSTGRES_BIN) or "mariadb" (mariadb-install-db, mariadbd,
    # mariadb: MULTITENANT_MARIADB_BIN); "" when the site sets none (then PATH, a module of the engine's
    # name, and the Debian locations).
    def db_bin(engine) = ENV[engine == "mariadb" ? "MULTITENANT_MARIADB_BIN" : "MULTITENANT_POSTGRES_BIN"].to_s.strip

    def key_dir = ENV["MULTITENANT_KEY_DIR"].to_s.strip.then { |d| d.empty? ? Config::DEFAULTS[:key_dir] : d }

    # The share group's choices: the user's groups that have a key, as [label, value]. Not OOD's
    # auto_groups, which would also be submitted as the Slurm account.
    def group_options
      names = (Process.groups + [Process.egid]).uniq.filter_map do |gid|
        Etc.getgrgid(gid).name
      rescue ArgumentError
        nil
      end
      # Only names mtshare accepts: a group name also names its key file.
      names = names.uniq.select { |n| n.match?(/\A\w[\w.-]{0,63}\z/) && File.file?(File.join(key_dir, "#{n}.key")) }.sort
      names.empty? ? [NO_GROUP] : names.map { |n| [n, n] }
    end

    # The OOD cluster id the service apps submit to: MULTITENANT_SUBMIT_CLUSTER (install writes it),
    # else the first visible Slurm cluster the user may submit to, else OOD's conventional "cluster".
    def submit_cluster
      id = ENV["MULTITENANT_SUBMIT_CLUSTER"].to_s.strip
      return id unless id.empty?

      if defined?(OodAppkit) && OodAppkit.respond_to?(:clusters)
        found = OodAppkit.clusters.find do |c|
          c.job_config[:adapter].to_s == "slurm" && c.job_allow? && !c.metadata.hidden && !c.id.to_s.end_with?("-multitenant")
        end
        return found.id.to_s if found
      end
      "cluster"
    rescue StandardError
      "cluster"
    end

    def value(context, name)
      context.respond_to?(name) ? context.public_send(name).to_s.strip : ""
    end

    # A whole number from the form within `range`, else nil: numbers reach a job only validated.
    #   Apps.int(context, :vllm_gpus, 0..16)  # "2" => 2; "", "2.5", "1e3", "0x10", "-1", "$(id)" => nil
    def int(context, name, range)
      text = value(context, name)
      number = text.match?(/\A\d{1,9}\z/) ? text.to_i : nil
      number if number && range.cover?(number)
    end

    # A form value safe as one argument of the service's command (a Hugging Face model id such as
    # "Qwen/Qwen2.5-7B-Instruct", or a path to a model directory): letters, digits and "_ . / + = -", not
    # starting with "-" (an option) or "+ =", at most 256 characters; else "". Also a plain YAML scalar as
    # it is, since ood_core writes connection.yml values unquoted (create_yml, echo -e).
    def argument(context, name)
      text = value(context, name)
      text.match?(%r{\A[A-Za-z0-9_./][A-Za-z0-9_./+=-]{0,255}\z}) ? text : ""
    end

    # `mtshare publish --group … --app … --method … --delivery … [--expires-in …]`, quoted; append
    # `--set key="$var"` pairs in the template.
    def publish(context, app:, delivery: nil)
      method = value(context, :mt_method)
      delivery ||= value(context, :mt_delivery)
      hours = Float(value(context, :mt_expires_hours), exception: false)
      flags = ["--group", value(context, :mt_group), "--app", app.to_s.strip,
               "--method", %w[card form].include?(method) ? method : "card",
               "--delivery", DELIVERIES.include?(delivery) ? delivery : DELIVERIES.first]
      flags += ["--expires-in", "#{(hours * 3600).round}s"] if hours&.positive? && hours <= 24 * 366
      # "Only show it to these users": names as typed; mtshare refuses a bad one with one line.
      allow = value(context, :mt_allow).split(/[\s,]+/).reject(&:empty?)
      flags += ["--allow", allow.join(",")] unless allow.empty?
      # OOD submits with --export=NONE (ood_core's Slurm adapter): the job never sees the dashboard's
      # settings, so a key dir the site chose is passed on.
      flags += ["--key-dir", key_dir] unless ENV["MULTITENANT_KEY_DIR"].to_s.strip.empty?
      "#{Shellwords.escape(publisher)} publish #{Shellwords.join(flags)}"
    end

    # Shell functions for the service apps' after.sh (and script.sh): a share is published only when
    # the service answers, the way a member connects, at the published host and port. after.sh is
    # sourced by OOD's job script after it starts script.sh in the background as SCRIPT_PID
    # (ood_core lib/ood_core/batch_connect/template.rb, base_script); on failure it prints one line,
    # `multitenant: …: not published`, and ends the job through OOD's clean_up (which stops script.sh)
    # with status 1. MULTITENANT_READY_SECONDS (in the job's environment, e.g. from the cluster's
    # script_wrapper) bounds each wait; default 600.
    SHELL_FUNCTIONS = <<~'SH'
      mt_ready_seconds="${MULTITENANT_READY_SECONDS:-600}"
      # Decimal whatever it looks like (bash reads 08 as bad octal), and at most 9 digits.
      case "${mt_ready_seconds}" in '' | *[!0-9]* | ??????????*) mt_ready_seconds=600 ;; esac
      mt_ready_seconds=$((10#${mt_ready_seconds}))
      # mt_fail WHY: the one line that says why nothing was published (a client app, which publishes
      # nothing, says what instead in $mt_outcome); the job ends with status 1.
      mt_fail() {
        echo "multitenant: $1: ${mt_outcome:-not published}"
        if declare -F clean_up >/dev/null; then clean_up 1; fi
        [ -n "${SCRIPT_PID:-}" ] && kill "${SCRIPT_PID}" 2>/dev/null
        exit 1
      }
      # True while the app's script.sh (and so its server) runs.
      mt_running() { [ -z "${SCRIPT_PID:-}" ] || kill -0 "${SCRIPT_PID}" 2>/dev/null; }
      # mt_wait WHAT SECONDS COMMAND...: runs COMMAND once a second until it succeeds; fails the job when
      # script.sh ends first or SECONDS pass (with COMMAND's last error, if it said one).
      mt_wait() {
        local what="$1" limit="$2" start="${SECONDS}" last=""
        shift 2
        until last="$("$@" 2>&1 >/dev/null)"; do
          mt_running || mt_fail "${what}: the service ended first (its output is above)"
          if [ $((SECONDS - start)) -ge "${limit}" ]; then
            last="$(printf '%s' "${last}" | tr -s '\r\n\t' '   ' | cut -c1-300)"
            mt_fail "${what}: not within ${limit} s${last:+ (${last% })}"
          fi
          sleep 1
        done
      }
      # mt_ports: two free TCP ports as the kernel hands them out, held at once so they differ: one on
      # every interface (the published one) and one on loopback (the service behind the gate). OOD's
      # find_port probes as the job's user, who cannot see other users' connections, so it can pick a
      # port an outgoing connection holds; it is the fallback where python3 is missing.
      mt_ports() {
        python3 -c 'import socket
      a = socket.socket(); a.bind(("", 0)); b = socket.socket(); b.bind(("127.0.0.1", 0))
      print(a.getsockname()[1], b.getsockname()[1])' 2>/dev/null && return 0
        local a b i
        a="$(find_port "${host}")" || return 1
        for i in 1 2 3 4 5 6 7 8; do
          b="$(find_port 127.0.0.1)" && [ "${b}" != "${a}" ] && echo "${a} ${b}" && return 0
        done
        return 1
      }
      # mt_secret: 128 random bits as 32 hex digits, from openssl or else the kernel; fails rather than
      # print anything shorter. Assign it (x="$(mt_secret)"): it never appears on a command line.
      mt_secret() {
        local s
        s="$(openssl rand -hex 16 2>/dev/null || od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
        [[ "${s}" =~ ^[0-9a-f]{32}$ ]] && echo "${s}"
      }
      # mt_curl ARGS...: curl, straight (never through a site's proxy), sending the share's key when
      # $mt_key is set: as a config line on stdin (printf is a builtin), never in curl's arguments.
      mt_curl() {
        if [ -n "${mt_key:-}" ]; then
          printf 'header = "Authorization: Bearer %s"\n' "${mt_key}" | curl --noproxy '*' -K - "$@"
        else
          curl --noproxy '*' "$@"
        fi
      }
      # mt_http URL: URL answers an HTTP request (any status below 500), with the key if $mt_key is set.
      mt_http() {
        local code
        code="$(mt_curl -sS -o /dev/null -m 5 -w '%{http_code}' "$1")" || return 1
        [ "${code}" -ge 100 ] && [ "${code}" -lt 500 ] || { echo "HTTP status ${code}" >&2; return 1; }
      }
      # mt_gated URL: URL (the gate) refuses a request without the key: HTTP 401.
      mt_gated() {
        local code
        code="$(curl --noproxy '*' -sS -o /dev/null -m 5 -w '%{http_code}' "$1")" || return 1
        [ "${code}" = 401 ] || { echo "answered HTTP ${code} without the key" >&2; return 1; }
      }
      # mt_loopback_only PORT: nothing answers on PORT at the node's other addresses (the service behind
      # the gate must not be reachable around it).
      mt_loopback_only() {
        local ip
        for ip in $(hostname -I 2>/dev/null); do
          case "${ip}" in 127.* | ::1) continue ;; esac
          if timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${ip}" "$1" 2>/dev/null; then
            echo "port $1 answers at ${ip}, not only on 127.0.0.1" >&2
            return 1
          fi
        done
      }
      # mt_lists URL MODEL: URL (an Ollama /api/tags) lists MODEL as Ollama names it: with ":latest" when
      # no tag is given, without the default "registry.ollama.ai/" and "library/" parts.
      mt_lists() {
        local tags m="$2"
        m="${m#registry.ollama.ai/}"
        m="${m#library/}"
        tags="$(mt_curl -sS -f -m 5 "$1")" || return 1
        if command -v python3 >/dev/null 2>&1; then
          printf '%s' "${tags}" | python3 -c 'import json, sys
      m = sys.argv[1]
      names = {n for x in json.load(sys.stdin).get("models") or [] for n in (x.get("name"), x.get("model"))}
      sys.exit(0 if m in names or m + ":latest" in names else 1)' "${m}"
        else
          printf '%s' "${tags}" | tr -d ' \t\r\n' | grep -qF -e "\"name\":\"${m}\"" -e "\"name\":\"${m}:latest\""
        fi
      }
      # mt_openai_lists URL MODEL: URL (an OpenAI-compatible /v1/models, as vLLM serves it) lists MODEL
      # as one of its data[].id.
      mt_openai_lists() {
        local models
        models="$(mt_curl -sS -f -m 5 "$1")" || return 1
        if command -v python3 >/dev/null 2>&1; then
          printf '%s' "${models}" | python3 -c 'import json, sys
      ids = [x.get("id") for x in json.load(sys.stdin).get("data") or [] if isinstance(x, dict)]
      if sys.argv[1] not in ids:
          sys.exit("it lists " + (", ".join(map(str, ids)) or "no model yet"))' "$2"
        else
          printf '%s' "${models}" | tr -d ' \t\r\n' | grep -qF -e "\"id\":\"$2\""
        fi
      }
    SH

    def shell_functions = SHELL_FUNCTIONS

    # `mtshare gate …` for script.sh: the published port on every interface, forwarding to the service
    # at $mt_upstream (127.0.0.1:<port>, or unix:<socket>); the key comes from MULTITENANT_GATE_KEY in
    # the job's environment (before.sh).
    def gate = %(#{Shellwords.escape(publisher)} gate --listen "0.0.0.0:${port}" --upstream "${mt_upstream}")

    # What a client app's job needs to use the LLM share the member chose in its form:
    #   {base_url:, ollama_url:, key:, model:}
    # choice: the share's key in `shares` (the value MultiTenant.llm_choices offers), or a URL — its
    # openai_base_url or ollama_url — from a form written for the first implementation's shape
    # (MultiTenant.llm_options). base_url: the share's openai_base_url, or "<ollama_url>/v1" for an
    # Ollama share that publishes only ollama_url (Ollama's OpenAI-compatible API); ollama_url: its
    # ollama_url; each "" unless http(s). key: its api_key (the gate's), nil without one. model: its
    # llm_model (vLLM) or ollama_model (Ollama), nil when it names none. All "" / nil when no share of
    # this user matches now (it ended, the choice was empty or not http(s), or a URL that several shares
    # publish cannot say which).
    def llm_access(choice, shares = MultiTenant.specs)
      choice = choice.to_s.strip
      share = shares[choice] || by_url(shares, http_only(choice))
      conn = share.is_a?(Hash) && share["connection"].is_a?(Hash) ? share["connection"] : {}
      ollama = http_only(conn["ollama_url"])
      base = http_only(conn["openai_base_url"])
      base = http_only("#{ollama.chomp("/")}/v1") if base.empty? && !ollama.empty?
      key = conn["api_key"]
      model = [conn["llm_model"], conn["ollama_model"]].find { |m| m.is_a?(String) && !m.strip.empty? }
      { base_url: base, ollama_url: ollama, key: key.is_a?(String) && !key.empty? ? key : nil, model: model }
    end

    # The one share that publishes `url` as its openai_base_url or ollama_url, nil for "" or when it is
    # not one. A URL is its publisher's text, which any member may copy into a share of theirs, in either
    # field: of the shares naming it, those whose host (which discovery checked is a node of its job) is
    # the URL's count, if any; more than one left is a tie no URL can break.
    def by_url(shares, url)
      return nil if url.empty?

      matches = shares.each_value.select do |s|
        s.is_a?(Hash) && s["connection"].is_a?(Hash) && [s["connection"]["openai_base_url"], s["connection"]["ollama_url"]].include?(url)
      end
      host = begin
        URI.parse(url).host
      rescue URI::InvalidURIError
        nil
      end
      on_host = matches.select { |s| host && s["connection"]["host"] == host }
      matches = on_host unless on_host.empty?
      matches.size == 1 ? matches.first : nil
    end

    # The value as the share published it (and the form offered it) when it is an http(s) URL, else "":
    # compared with the shares as it is, since a URL parsed and printed again may differ from its text.
    def http_only(url)
      url = url.to_s.strip
      http_url(url).empty? ? "" : url
    end

    # An http(s) URL, or "" — for values a client app puts in its job's environment.
    def http_url(url)
      uri = URI.parse(url.to_s.strip)
      uri.is_a?(URI::HTTP) && uri.host ? uri.to_s : ""
    rescue URI::InvalidURIError
      ""
    end
  end
end
