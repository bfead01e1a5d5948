# frozen_string_literal: true

require "erb"
require "etc"
require "json"
require "uri"
require "shellwords"

module MultiTenant
  # HTML for the delivery apps' card views. Every value came from a job name: it is escaped here, links
  # are made only for http(s) URLs, and shell snippets are quoted. OOD passes a view's output through
  # Markdown without filtering, so the HTML has no blank lines and no indented lines (which Markdown
  # would turn into code blocks) — newlines inside values become &#10;.
  module View
    # Keys whose values are secrets (ext/multitenant-core/src/secrets.rs `looks_secret` is the same rule).
    SECRET = /pass|secret|token|credential|(\A|_)key\z/i
    INTERNAL = %w[jobid mt_appname mt_owner mt_group].freeze

    module_function

    def h(value) = ERB::Util.html_escape(value.to_s).gsub(/\r\n?|\n/, "&#10;")

    # A value safe as one argument of a command to copy: no option (leading "-"), nothing odd.
    def word?(value) = value.to_s.match?(/\A[A-Za-z0-9_][A-Za-z0-9_.@:+-]*\z/)

    def http?(url)
      uri = URI.parse(url.to_s)
      uri.is_a?(URI::HTTP) && !uri.host.to_s.empty?
    rescue URI::InvalidURIError
      false
    end

    def link(url)
      return h(url) unless http?(url)

      %(<a href="#{h(url)}" target="_blank" rel="noopener noreferrer">#{h(url)}</a>)
    end

    # How a card links to a web service on a compute node, which a browser outside the cluster cannot
    # reach: MULTITENANT_NODE_PROXY in the dashboard's env. "rnode" (default): OOD's reverse proxy
    # /rnode/<host>/<port>/<path>, which strips its prefix (for apps serving at "/"); "node":
    # /node/<host>/<port>/<path>, which passes the full path (for apps told their base URL, as OOD's
    # Jupyter is); "direct": the service's own http://<host>:<port>/ (for sites whose browsers reach
    # the nodes). The proxy paths are OOD's: OSC/ondemand v4.2.3 apps/dashboard/app/helpers/
    # batch_connect/sessions_helper.rb:174 and app/views/batch_connect/sessions/connections/
    # _novnc.html.erb:5 reach a node's port as "rnode/#{connect.host}/#{connect.websocket}/..."; the
    # prefixes are the site's node_uri "/node" and rnode_uri "/rnode" in ood_portal.yml, whose
    # host_regex must match the node's name.
    NODE_PROXIES = %w[rnode node direct].freeze

    def node_proxy
      mode = ENV["MULTITENANT_NODE_PROXY"].to_s.strip.downcase
      NODE_PROXIES.include?(mode) ? mode : "rnode"
    end

    # The path through OOD's node proxy for a plain http URL on the share's own node, else nil.
    def proxied(url, host)
      mode = node_proxy
      return nil if mode == "direct" || !http?(url)

      uri = URI.parse(url.to_s)
      return nil unless uri.scheme == "http" && uri.host == host.to_s && uri.host.match?(/\A[A-Za-z0-9][A-Za-z0-9.-]{0,252}\z/)
      return nil unless uri.userinfo.nil? && uri.port.between?(1, 65_535)

      path = uri.path.to_s.empty? ? "/" : uri.path
      # The browser resolves dot segments (also %2e-encoded) in the href: none may climb out of
      # /<mode>/<host>/<port>/ to another node or the OOD host's own paths.
      segments = path.split("/", -1).map { |seg| URI.decode_www_form_component(seg) rescue seg } # rubocop:disable Style/RescueModifier
      return nil if segments.any? { |seg| %w[. ..].include?(seg) } || path.include?("\\") || path.start_with?("//")

      "/#{mode}/#{uri.host}/#{uri.port}#{path}#{"?#{uri.query}" if uri.query}"
    rescue URI::InvalidURIError
      nil
    end

    def code(text) = "<pre><code>#{h(text)}</code></pre>"
    def rows(pairs) = "<table class=\"table table-sm\">#{pairs.map { |k, v| "<tr><th>#{h(k)}</th><td>#{v}</td></tr>" }.join}</table>"
    def section(title, body) = %(<div class="mt-section"><h5>#{h(title)}</h5>#{body}</div>)
    # A POSIX shell word for copy and paste: bare when plainly safe, else single-quoted.
    def sh(value)
      v = value.to_s
      v.match?(%r{\A[A-Za-z0-9_.,:/=@%+-]+\z}) ? v : "'#{v.gsub("'") { %q('\\'') }}'"
    end

    def strings(conn) = conn.to_h.to_h { |k, v| [k.to_s, v.to_s] }

    # The first line of every card's body: who shared it (Slurm's word for the job's owner), read before
    # anything the publisher chose (the app name, the values).
    def header(c)
      %(<p class="mt-shared-by text-muted">Shared by #{h(c["mt_owner"])} with group #{h(c["mt_group"])} (job #{h(c["jobid"])}).</p>)
    end

    # sys/multitenant-delivery_default: a section per kind of share, then any other values.
    def default(conn) = %(<div class="multitenant">#{header(strings(conn))}#{body(conn)}</div>)

    # The sections of a share's card, without the header: members' cards and the owner's own.
    def body(conn)
      c = strings(conn)
      used = INTERNAL.dup
      parts = []
      if (url = c["ollama_url"])
        model = c["ollama_model"]
        used += %w[ollama_url ollama_model openai_base_url api_key host port]
        parts.concat(gate?(c) ? llm_gated(c, url, model) : llm_open(url, model))
      elsif (base = c["openai_base_url"]) && gate?(c) && http?(base)
        # An OpenAI-compatible server that is not Ollama (vLLM): base URL, key and model.
        used += %w[openai_base_url llm_model llm_engine api_key host port]
        parts.concat(openai_gated(c, base, c["llm_model"]))
      end
      if c["db_engine"] || c["db_name"]
        keys = %w[db_engine host port db_name db_user db_password]
        used += keys
        body = rows(keys.filter_map { |k| [k.delete_prefix("db_").capitalize, h(c[k])] if c[k] })
        if %w[host port db_user db_name].all? { |k| word?(c[k]) }
          body += code(if c["db_engine"].to_s.match?(/maria|mysql/i)
                         "mysql -h #{c["host"]} -P #{c["port"]} -u #{c["db_user"]} -p #{c["db_name"]}"
                       else
                         "psql -h #{c["host"]} -p #{c["port"]} -U #{c["db_user"]} #{c["db_name"]}"
                       end)
        end
        parts << section("Database connection", body)
      end
      if (jdbc = c["jdbc_url"])
        used << "jdbc_url"
        parts << section("JDBC URL", code(jdbc))
      end
      if (url = c["url"]) && gate?(c) && url.end_with?("/") && http?(url)
        used += %w[url api_key]
        parts << section("Web dashboard", dashboard_gated(c, url))
      elsif (url = c["url"])
        used << "url"
        # Through OOD's node proxy when the site uses one; the direct URL stays readable, for programs
        # inside the cluster.
        body = if (path = proxied(url, c["host"]))
                 %(<p><a class="btn btn-primary" href="#{h(path)}" target="_blank" rel="noopener noreferrer">Open</a></p>) +
                   %(<p class="small">From inside the cluster: <code>#{h(url)}</code></p>)
               else
                 "<p>#{link(url)}</p>"
               end
        parts << section("Web dashboard", body)
      end
      rest = c.except(*used)
      parts << section(parts.empty? ? "Connection" : "Other values", rows(rest.map { |k, v| [k, k.match?(SECRET) ? h(v) : link(v)] })) unless rest.empty?
      parts.join
    end

    # A share behind the service gate (`mtshare gate`) carries its key as api_key: the gate lets in a
    # request with `Authorization: Bearer <key>`, or a browser that logged in once with it.
    def gate?(c) = c["api_key"].to_s.match?(/\A[A-Za-z0-9_-]{32,512}\z/)

    def key_row(key) = ["API key", "<details><summary>Show</summary><code>#{h(key)}</code></details>"]

    # An Ollama share behind the gate: what a member pastes into their tool (base URL and key), for
    # OpenAI-compatible clients (Cline, Continue, the openai package) and Ollama's own.
    def llm_gated(c, url, model)
      key = c["api_key"]
      base = c["openai_base_url"].to_s.empty? ? "#{url}/v1" : c["openai_base_url"]
      body = rows([["OpenAI base URL", link(base)], key_row(key), ["Ollama URL", link(url)], ["Model", h(model)]].reject { |_, v| v.empty? })
      if http?(base) && http?(url)
        # Behind a click, like the key itself: they hold it.
        commands = openai_commands(base, key) + code(%(export OLLAMA_HOST=#{sh(url)} OLLAMA_API_KEY=#{sh(key)}))
        body += "<details><summary>Shell commands (they hold the key)</summary>#{commands}</details>"
      end
      assistant = "<p>In VS Code (Cline or Continue) choose the <b>OpenAI Compatible</b> provider with base URL <code>#{h(base)}</code>, " \
                  "the API key above#{model ? " and model <code>#{h(model)}</code>" : ""}. Ollama's Python client: " \
                  "<code>ollama.Client(host=os.environ[\"OLLAMA_HOST\"], headers={\"Authorization\": \"Bearer \" + os.environ[\"OLLAMA_API_KEY\"]})</code>; " \
                  "the <code>ollama</code> command line cannot send a key.</p>"
      [section("LLM API", body), section("Code assistant", assistant)]
    end

    # export is a shell builtin: the key reaches no command line; curl reads its header from a file.
    def openai_commands(base, key)
      code(%(export OPENAI_BASE_URL=#{sh(base)} OPENAI_API_KEY=#{sh(key)}\ncurl -s "$OPENAI_BASE_URL/models" -H @<(printf 'Authorization: Bearer %s\\n' "$OPENAI_API_KEY")))
    end

    # An OpenAI-compatible share behind the gate (vLLM): what a member pastes into their tool.
    def openai_gated(c, base, model)
      key = c["api_key"]
      body = rows([["OpenAI base URL", link(base)], key_row(key), ["Model", h(model)]].reject { |_, v| v.empty? })
      body += "<details><summary>Shell commands (they hold the key)</summary>#{openai_commands(base, key)}</details>"
      assistant = "<p>In VS Code (Cline or Continue) choose the <b>OpenAI Compatible</b> provider with base URL <code>#{h(base)}</code>, " \
                  "the API key above#{model ? " and model <code>#{h(model)}</code>" : ""}. Python: <code>openai.OpenAI()</code> reads " \
                  "<code>OPENAI_BASE_URL</code> and <code>OPENAI_API_KEY</code> from the environment.</p>"
      [section("LLM API (OpenAI-compatible)", body), section("Code assistant", assistant)]
    end

    # An Ollama share without the gate (published before it, or by hand): anyone who reaches it uses it.
    def llm_open(url, model)
      body = rows([["URL", link(url)], ["Model", h(model)]].reject { |_, v| v.empty? })
      # Commands to copy are offered only for plain http(s) URLs: nothing a value holds becomes an option.
      if http?(url)
        body += code("export OLLAMA_HOST=#{sh(url)}")
        body += code(%(curl -s --url #{sh("#{url}/api/generate")} -d #{sh(JSON.generate(model: model.to_s, prompt: "Hello"))}))
      end
      [section("LLM API", body),
       section("Code assistant", "<p>In VS Code (Cline or Continue) choose the Ollama provider with base URL #{link(url)}#{model ? " and model <code>#{h(model)}</code>" : ""}.</p>")]
    end

    # A web service behind the gate: Open posts the key once to the gate's login (never in a URL, so
    # never in a proxy's log or the browser's history), which answers with an HttpOnly cookie scoped to
    # this service's path and sends the browser on to it.
    def dashboard_gated(c, url)
      target = proxied(url, c["host"]) || url
      form = %(<form method="post" action="#{h(target)}?multitenant-login" target="_blank" rel="noopener noreferrer">) +
             %(<input type="hidden" name="multitenant_key" value="#{h(c["api_key"])}">) +
             %(<button class="btn btn-primary" type="submit">Open</button></form>)
      form + %(<p class="small">From inside the cluster: <code>#{h(url)}</code> with the header <code>Authorization: Bearer</code> and this key:</p>) +
        rows([key_row(c["api_key"])])
    end

    # The owner's own card: a service app's info.html.erb, which OOD renders with the session's binding
    # in every state at every refresh of the sessions page (OSC/ondemand v4.2.3 and v3.1.16
    # apps/dashboard/app/models/batch_connect/session.rb `render_info_view`, app/views/batch_connect/
    # sessions/card/_card_body.html.erb). It says what members' dashboards see — from the owner's own
    # discovery (MultiTenant.specs, which holds the owner's shares too), not from what the form asked:
    # what is shared, with which group and allow-list, until when, how many members see it now, how to
    # stop sharing without ending the job, and the service's credentials for the owner's own use.
    # job_id and cluster_id: the session's; job_name: the plain name OOD submitted the job with (put
    # back on unshare); group_members: a group name => its member list (a test seam, Etc by default).
    def owner(job_id:, cluster_id: nil, job_name: nil, shares: MultiTenant.specs, now: Time.now, user: nil, group_members: nil)
      user ||= Etc.getpwuid(Process.uid).name
      key, share = owned_share(shares, job_id.to_s, cluster_id.to_s, user)
      unless share
        # Not in this dashboard's last discovery: not published yet, no longer shared, or undecided.
        # Only a line about this job, or about no one job (the queue, a group's key): a line about another
        # job (any user's, and its text partly theirs) is not why this one is unseen.
        mine = /\Ajob #{Regexp.escape(job_id.to_s)} \(#{Regexp.escape(user)}\):/
        why = MultiTenant.respond_to?(:errors) ? Array(MultiTenant.errors).find { |e| e.to_s.match?(mine) || !e.to_s.match?(/\Ajob \S+ \(/) } : nil
        text = if why
                 "Members may not see this job now: the last look at the queue said: #{why}"
               else
                 "Not shared now: members see nothing. A service is shared once it answers (its log says when); " \
                   "after Stop sharing, members' cards go at their next refresh."
               end
        return %(<div class="multitenant mt-owner"><p class="mt-owner-status">#{h(text)}</p></div>)
      end
      info = share["info"] || {}
      acc = share["accounting"] || {}
      conn = share["connection"] || {}
      group = info["group"].to_s
      allow = acc["mtu"].to_s.split(",").reject(&:empty?)
      expires = info["expires_at"]
      expired = expires && expires.to_i <= now.to_i
      audience = expired ? 0 : audience(group, allow, user, group_members)
      table = [
        ["Shared as", "#{h(info["app"] || acc["mta"])} (#{acc["mtm"] == "form" ? "a choice in other apps' forms only" : "a card on each member's dashboard and a choice in forms"})"],
        ["With", allow.empty? ? "group #{h(group)}: every member" : "group #{h(group)}, shown only to #{h(allow.join(", "))} (not a lock: every member holds the group's key)"],
        ["Until", expires ? "#{h(Time.at(expires.to_i).localtime.strftime("%Y-%m-%d %H:%M %Z"))}#{expired ? " (expired: members no longer see it)" : ""}" : "the job ends"],
        ["Members who see it now", audience.nil? ? "unknown (group #{h(group)} is not known here)" : "#{audience} (#{allow.empty? ? "the group's listed members" : "allow-listed members of the group"}, you not counted)"]
      ]
      stop = stop_command(key, conn["jobid"] || job_id, info["cluster"], job_name)
      %(<div class="multitenant mt-owner"><p class="mt-owner-status text-success">Shared now.</p>#{rows(table)}) +
        section("Stop sharing (the job keeps running)",
                "<p>Run this on a login node of the cluster: members' cards go at their next refresh. Whoever already holds the key " \
                "can use the service until the job ends.</p>#{code(stop)}") + "</div>"
    end

    # A running service app's view.html.erb, for its owner: the service as members' cards show it, from
    # the job's own connection.yml (conn_params, written mode 0600 by ood_core's create_yml: ood_core
    # v0.31.1 lib/ood_core/batch_connect/template.rb), so it stays there after Stop sharing.
    def own(conn)
      c = strings(conn).reject { |_, v| v.strip.empty? }
      return "" if c.except("host", "port").empty?

      section("For your own use", body(c))
    end

    def owned_share(shares, job_id, cluster_id, user)
      shares.find do |key, s|
        info = s["info"] || {}
        next false unless s.dig("connection", "jobid").to_s == job_id && info["user"] == user
        # With several clusters (keys "<job id>@<cluster>") the session's OOD cluster must be the share's.
        !key.to_s.include?("@") || cluster_id.empty? ||
          [info["cluster"], info["ood_cluster"]].include?(cluster_id) ||
          info["ood_cluster"].to_s == "#{cluster_id}-multitenant"
      end
    end

    # How many members are shown the share: the group's member list as the name service gives it
    # (getgrnam: users whose primary group it is are counted only when allow-listed, since listing them
    # would mean enumerating every account), or the allow-listed members; the owner not counted. nil when
    # the group is not known here.
    def audience(group, allow, user, group_members)
      lookup = group_members || ->(g) { Etc.getgrnam(g) }
      entry = lookup.call(group)
      return nil unless entry

      members = entry.respond_to?(:mem) ? entry.mem : Array(entry)
      return (members - [user]).uniq.size if allow.empty?

      gid = entry.respond_to?(:gid) ? entry.gid : nil
      # An entry may be a uid (the core's Message#allows): counted as that user.
      names = allow.map { |a| a.match?(/\A\d{1,10}\z/) ? (Etc.getpwuid(a.to_i).name rescue a) : a } # rubocop:disable Style/RescueModifier
      names.uniq.count do |name|
        next false if name == user
        next true if members.include?(name)

        gid && (Etc.getpwnam(name).gid == gid rescue false) # rubocop:disable Style/RescueModifier
      end
    rescue ArgumentError, SystemCallError
      nil
    end

    # The command that stops sharing from outside the job: mtshare unshare puts the plain name back.
    # With several clusters, scontrol asks the share's own cluster.
    def stop_command(key, job_id, cluster, job_name)
      name = job_name.to_s.empty? ? "unshared" : job_name.to_s
      if key.to_s.include?("@")
        "scontrol -M #{sh(cluster)} update JobId=#{sh(job_id)} JobName=#{sh(name)}"
      else
        "#{sh(Apps.publisher)} unshare --job-id #{sh(job_id)} --name #{sh(name)}"
      end
    end

    # sys/multitenant-delivery_debug: the share as JSON; secrets only behind a click.
    def debug(conn)
      c = strings(conn)
      secrets = c.select { |k, _| k.match?(SECRET) }
      shown = c.to_h { |k, v| [k, secrets.key?(k) ? "(hidden)" : v] }
      body = code(JSON.pretty_generate(shown))
      body += "<details><summary>Show secrets</summary>#{code(JSON.pretty_generate(secrets))}</details>" unless secrets.empty?
      %(<div class="multitenant">#{header(c)}#{section("Share", body)}</div>)
    end

    # sys/multitenant-delivery_content: published Markdown/HTML/text, shown in a sandboxed frame (no
    # scripts, no same-origin access, no forms), from the share itself — never from a path.
    def content(conn)
      c = strings(conn)
      text = c["content"].to_s
      inner = case c["content_format"]
              when "html" then text
              when "text" then "<pre>#{ERB::Util.html_escape(text)}</pre>"
              else markdown(text)
              end
      # The policy stops the frame from loading anything (no tracking pixels, no remote CSS).
      csp = %(<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">)
      doc = %(<!doctype html><meta charset="utf-8">#{csp}<style>body{font-family:sans-serif}</style>#{inner})
      frame = %(<iframe sandbox="" referrerpolicy="no-referrer" width="100%" height="400" srcdoc="#{h(doc)}"></iframe>)
      %(<div class="multitenant">#{header(c)}#{section(c["mt_appname"] || "Content", frame)}</div>)
    end

    def markdown(text)
      return "<pre>#{ERB::Util.html_escape(text)}</pre>" unless defined?(Redcarpet)

      Redcarpet::Markdown.new(Redcarpet::Render::HTML.new(escape_html: true, safe_links_only: true),
                              tables: true, fenced_code_blocks: true, autolink: true).render(text)
    end
  end
end
