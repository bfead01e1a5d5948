# frozen_string_literal: true

require "yaml"

# The admin tasks (admin.rake) on the real test cluster, against an OOD tree in a temp dir.
RSpec.describe "admin.rake", :cluster do
  before { require_cluster! }
  after { cancel_jobs }

  around do |example|
    Dir.mktmpdir("ood") do |dir|
      @ood = dir
      FileUtils.mkdir_p(File.join(dir, "etc/config/clusters.d"))
      File.write(File.join(dir, "etc/config/clusters.d/hpc.yml"), { "v2" => { "metadata" => { "title" => "HPC" },
                                                                             "job" => { "adapter" => "slurm", "cluster" => "mtcluster" } } }.to_yaml)
      File.write(File.join(dir, "etc/config/clusters.d/k8s.yml"), { "v2" => { "job" => { "adapter" => "kubernetes" } } }.to_yaml)
      FileUtils.mkdir_p(File.join(dir, "etc/config/apps/dashboard"))
      File.write(File.join(dir, "etc/config/apps/dashboard/env"), "OOD_BC_CARD_TIME=1\n")
      example.run
    end
  end

  def rake(*args, env: {})
    env = { "OOD_ETC" => File.join(@ood, "etc"), "OOD_APPS" => File.join(@ood, "apps"), "MULTITENANT_KEY_DIR" => key_dir }.merge(env)
    out, err, status = Open3.capture3(env, "rake", "-f", File.join(ROOT, "admin.rake"), *args)
    [out, err, status.exitstatus]
  end

  it "doctor names each problem with its fix; install (dry run, then APPLY=1) fixes them; doctor then passes" do
    out, err, code = rake("doctor")
    expect(code).to eq(1)
    expect(err).to eq("7 problem(s)\n")
    expect(out).to include("ok       Slurm enforces WCKeys", "ok       slurmctld shows jobs to all users",
                           "ok       users who may publish (--wckey=multitenant): mtdefault, mtowner", "ok       keys: group mtclass: 1 key(s), root:mtclass 0440")
    # The dashboard would look for keys elsewhere than this shell's MULTITENANT_KEY_DIR until install writes it.
    expect(problems(out).first).to eq("PROBLEM  keys: this shell's MULTITENANT_KEY_DIR=#{key_dir} is not the dashboard's (/etc/multitenant/keys, " \
                                      "from #{@ood}/etc/config/apps/dashboard/env), so the dashboard would not find the keys checked here: " \
                                      "MULTITENANT_KEY_DIR=#{key_dir} rake -f …/admin.rake install APPLY=1")
    expect(out.lines.grep(/PROBLEM  OOD/).map { |l| l[/PROBLEM  (OOD: [^:]+)/, 1] }).to eq(
      ["OOD: no initializer at #{@ood}/etc/config/apps/dashboard/initializers/multitenant.rb", "OOD: #{@ood}/etc/config/apps/dashboard/env has no MULTITENANT_LIB naming the gem's lib directory",
       "OOD: #{@ood}/etc/config/apps/dashboard/env has no MULTITENANT_SUBMIT_CLUSTER, so the apps submit to a cluster named \"cluster\"",
       "OOD: #{@ood}/etc/config/apps/dashboard/env has no MULTITENANT_PUBLISHER, so jobs look for mtshare on PATH",
       "OOD: apps missing from #{@ood}/apps", "OOD: MULTITENANT_CLUSTERS is not set"]
    )
    expect(out.lines.grep(/PROBLEM/)).to all(include("install APPLY=1"))

    before = Dir.glob("#{@ood}/**/*").sort
    out, = rake("install")
    expect(out.lines.last).to eq("dry run: nothing was changed; run again with APPLY=1\n")
    expect(out).to include("would create #{@ood}/etc/config/clusters.d/hpc-multitenant.yml", "would update #{@ood}/etc/config/apps/dashboard/env")
    expect(Dir.glob("#{@ood}/**/*").sort).to eq(before)

    out, = rake("install", env: { "APPLY" => "1" })
    expect(out).to include("created #{@ood}/apps/multitenant-delivery_default/view.html.erb", "updated #{@ood}/etc/config/apps/dashboard/env")
    expect(rake("install", env: { "APPLY" => "1" }).first).to eq("everything is installed and up to date\n")
    env = File.read(File.join(@ood, "etc/config/apps/dashboard/env"))
    expect(env).to start_with("OOD_BC_CARD_TIME=1\n")
    expect(env).to include("MULTITENANT_LIB=#{File.join(ROOT, "lib")}\n", "MULTITENANT_CLUSTERS=mtcluster=hpc-multitenant\n",
                           "MULTITENANT_SUBMIT_CLUSTER=hpc\n", "MULTITENANT_PUBLISHER=#{MultiTenant.publisher_path}\n")
    dismiss = YAML.safe_load(File.read(File.join(@ood, "etc/config/clusters.d/hpc-multitenant.yml")))["v2"]
    expect(dismiss["metadata"]).to include("hidden" => true)
    expect(dismiss["job"]).to include("adapter" => "slurm", "cluster" => "mtcluster")
    expect(File.exist?(File.join(@ood, "etc/config/clusters.d/k8s-multitenant.yml"))).to be(false)

    out, err, code = rake("doctor")
    expect([code, err, out.lines.grep(/PROBLEM/)]).to eq([0, "", []])
    expect(out).to include("ok       OOD: cards use hpc-multitenant, whose Delete only dismisses", "ok       OOD: the apps submit to cluster hpc",
                           "ok       OOD: jobs publish with #{MultiTenant.publisher_path} (compute nodes must reach this path)")
  end

  def problems(out) = out.lines.grep(/\APROBLEM/).map(&:chomp)
  def env_path = File.join(@ood, "etc/config/apps/dashboard/env")
  def installed(app, file) = File.join(@ood, "apps", app, file)

  it "installs each app file with its source's mode, so OOD can run script.sh; a changed mode is reinstalled and doctor names it" do
    rake("install", env: { "APPLY" => "1" })
    modes = Dir.glob("#{@ood}/apps/**/*").select { |f| File.file?(f) }.to_h { |f| [f.delete_prefix("#{@ood}/apps/"), File.stat(f).mode & 0o777] }
    scripts = modes.keys.grep(%r{/template/script\.sh\.erb\z})
    expect(scripts.size).to eq(Dir[File.join(ROOT, "ood/apps/*/template/script.sh.erb")].size).and be >= 7
    expect(modes.slice(*scripts).values.uniq).to eq([0o755])
    expect(modes.except(*scripts).values.uniq).to eq([0o644])

    script = installed("multitenant-llm", "template/script.sh.erb")
    File.chmod(0o644, script)
    out, = rake("doctor")
    expect(problems(out)).to eq(["PROBLEM  OOD: #{script} is not executable, so its job fails with Permission denied: rake -f …/admin.rake install APPLY=1"])
    expect(rake("install").first.lines).to eq(["would update #{script}\n", "dry run: nothing was changed; run again with APPLY=1\n"])
    expect(rake("install", env: { "APPLY" => "1" }).first).to eq("updated #{script}\n")
    expect(File.stat(script).mode & 0o777).to eq(0o755)
    expect([rake("doctor")[2], rake("install").first]).to eq([0, "everything is installed and up to date\n"])
  end

  it "doctor names an installed form whose share group OOD would submit as the Slurm account" do
    rake("install", env: { "APPLY" => "1" })
    form = installed("multitenant-llm", "form.yml.erb")
    File.write(form, File.read(form).sub("  - mt_group\n", "  - auto_groups\n"))
    out, = rake("doctor")
    expect(problems(out)).to eq(["PROBLEM  OOD: #{form} offers auto_groups and submit.yml.erb sets no accounting_id, so the group would be " \
                                 "submitted as the Slurm account: rake -f …/admin.rake install APPLY=1",
                                 "PROBLEM  OOD: 1 app file(s) in #{@ood}/apps differ from this gem's or are missing (multitenant-llm/form.yml.erb): " \
                                 "rake -f …/admin.rake install APPLY=1"])
    submit = installed("multitenant-llm", "submit.yml.erb")
    File.write(submit, File.read(submit).sub("script:\n", "script:\n  accounting_id: \"<%= ENV['USER'] %>\"\n"))
    expect(problems(rake("doctor").first)).to eq(["PROBLEM  OOD: 2 app file(s) in #{@ood}/apps differ from this gem's or are missing " \
                                                  "(multitenant-llm/form.yml.erb, multitenant-llm/submit.yml.erb): rake -f …/admin.rake install APPLY=1"])
  end

  it "doctor names app files an upgrade left behind or that were removed, and what the apps run on the compute nodes" do
    rake("install", env: { "APPLY" => "1" })
    FileUtils.rm_f(installed("multitenant-vllm", "info.html.erb"))
    File.write(env_path, "#{File.read(env_path)}MULTITENANT_VLLM=vllm serve\nMULTITENANT_CHAT_PYTHON=/opt/chat/bin/python\nMULTITENANT_OLLAMA=/bin/true\n")
    out, = rake("doctor")
    expect(problems(out)).to eq(["PROBLEM  OOD: 1 app file(s) in #{@ood}/apps differ from this gem's or are missing (multitenant-vllm/info.html.erb): rake -f …/admin.rake install APPLY=1",
                                 "PROBLEM  OOD: MULTITENANT_VLLM=vllm serve is not an absolute path, so the vLLM app cannot run it on the " \
                                 "compute nodes: set MULTITENANT_VLLM to an absolute path in #{env_path}"])
    expect(out).to include("ok       OOD: the chat app (a Python with gradio and openai) runs /opt/chat/bin/python on the compute nodes (not on this host, so not checked here)",
                           "ok       OOD: the Ollama app runs /bin/true (here too: check the compute nodes see the same file)")
    rake("install", env: { "APPLY" => "1" })
    File.write(env_path, File.read(env_path).sub("MULTITENANT_VLLM=vllm serve\n", ""))
    out, _, code = rake("doctor")
    expect([code, problems(out)]).to eq([0, []])
    expect(out).to include("ok       OOD: the installed apps are this gem's",
                           "ok       OOD: the vLLM app runs `vllm` from the compute nodes' PATH (or its module); MULTITENANT_VLLM in #{env_path} names another",
                           "ok       OOD: the vLLM app serves on a private Unix socket (vllm serve --uds: vLLM 0.9 or later); MULTITENANT_VLLM_LISTEN=loopback in #{env_path} for an older vLLM")
    File.write(env_path, "#{File.read(env_path)}MULTITENANT_VLLM_LISTEN=tcp\n")
    expect(problems(rake("doctor").first)).to eq(["PROBLEM  OOD: MULTITENANT_VLLM_LISTEN=tcp is neither unix nor loopback (the vLLM app uses a Unix socket): set it to one of them in #{env_path}, or remove it"])
    File.write(env_path, File.read(env_path).sub("MULTITENANT_VLLM_LISTEN=tcp\n", "MULTITENANT_VLLM_LISTEN=loopback\n"))
    out, _, code = rake("doctor")
    expect([code, problems(out)]).to eq([0, []])
    expect(out).to include("ok       OOD: the vLLM app serves on 127.0.0.1 (MULTITENANT_VLLM_LISTEN=loopback): other jobs on the node reach it around the gate: " \
                           "give vLLM jobs whole nodes, or use vLLM 0.9 or later and remove the setting")
  end

  it "doctor names an app setting that is here but the wrong kind: a program where a directory is meant, and the reverse" do
    rake("install", env: { "APPLY" => "1" })
    File.write(env_path, "#{File.read(env_path)}MULTITENANT_POSTGRES_BIN=/bin/true\nMULTITENANT_VLLM=/usr/bin\n")
    out, = rake("doctor")
    expect(problems(out)).to eq(["PROBLEM  OOD: MULTITENANT_VLLM=/usr/bin is a directory here, not a program: set MULTITENANT_VLLM to the program in #{env_path}",
                                 "PROBLEM  OOD: MULTITENANT_POSTGRES_BIN=/bin/true is a file here, not a directory: set MULTITENANT_POSTGRES_BIN to the directory " \
                                 "that holds initdb in #{env_path}"])
  end

  it "doctor names a submit cluster that does not exist or is hidden, and a publisher that cannot run" do
    rake("install", env: { "APPLY" => "1" })
    installed_env = File.read(env_path)
    edit = ->(from, to) { File.write(env_path, installed_env.sub(from, to)) }

    edit.("MULTITENANT_SUBMIT_CLUSTER=hpc\n", "MULTITENANT_SUBMIT_CLUSTER=owens\n")
    expect(problems(rake("doctor").first)).to eq(["PROBLEM  OOD: MULTITENANT_SUBMIT_CLUSTER=owens, but #{@ood}/etc/config/clusters.d/owens.yml does not exist: " \
                                                  "name a clusters.d entry, or rake -f …/admin.rake install APPLY=1"])
    edit.("MULTITENANT_SUBMIT_CLUSTER=hpc\n", "MULTITENANT_SUBMIT_CLUSTER=hpc-multitenant\n")
    expect(problems(rake("doctor").first)).to eq(["PROBLEM  OOD: MULTITENANT_SUBMIT_CLUSTER=hpc-multitenant is a hidden cluster entry, so the apps cannot be launched: " \
                                                  "name a visible Slurm cluster, or rake -f …/admin.rake install APPLY=1"])
    Dir.mktmpdir do |dir|
      plain = File.join(dir, "mtshare")
      File.write(plain, "")
      edit.("MULTITENANT_PUBLISHER=#{MultiTenant.publisher_path}\n", "MULTITENANT_PUBLISHER=#{plain}\n")
      expect(problems(rake("doctor").first)).to eq(["PROBLEM  OOD: MULTITENANT_PUBLISHER=#{plain} is not an executable file: " \
                                                    "rake compile (or reinstall the gem), then rake -f …/admin.rake install APPLY=1"])
    end
    File.write(env_path, installed_env)
    expect(rake("doctor")[2]).to eq(0)
  end

  it "install maps every Slurm cluster; doctor asks each as OOD does and checks what strategy sacct depends on" do
    File.write(File.join(@ood, "etc/config/clusters.d/beta.yml"), { "v2" => { "metadata" => { "title" => "Beta" },
                                                                              "job" => { "adapter" => "slurm", "cluster" => "mtbeta" } } }.to_yaml)
    rake("install", env: { "APPLY" => "1" })
    env = File.read(File.join(@ood, "etc/config/apps/dashboard/env"))
    expect(env).to include("MULTITENANT_CLUSTERS=mtbeta=beta-multitenant,mtcluster=hpc-multitenant\n")
    out, = rake("doctor")
    expect(out).to include("ok       Slurm: cluster mtbeta answers (-M mtbeta)", "ok       Slurm: cluster mtcluster answers (-M mtcluster)")

    # slurmdbd's own PrivateData=jobs hides other users' jobs from sacct --allusers, silently.
    bin = File.join(@ood, "bin")
    FileUtils.mkdir_p(bin)
    %w[scontrol squeue sacct].each { |c| File.symlink("/usr/bin/#{c}", File.join(bin, c)) }
    File.write(File.join(bin, "sacctmgr"), <<~SH)
      #!/bin/sh
      [ "$2" = configuration ] || exec /usr/bin/sacctmgr "$@"
      /usr/bin/sacctmgr "$@" | awk '/^SlurmDBD configuration/ { dbd = 1 } dbd && /^PrivateData/ { print "PrivateData            = jobs,usage"; next } { print }'
    SH
    File.chmod(0o755, File.join(bin, "sacctmgr"))
    out, = rake("doctor", env: { "MULTITENANT_STRATEGY" => "sacct" })
    expect(out).to include("ok       slurmdbd shows jobs to all users (strategy sacct)")
    out, = rake("doctor", env: { "MULTITENANT_STRATEGY" => "sacct", "MULTITENANT_SLURM_BIN" => bin })
    expect(out).to include("PROBLEM  Slurm: PrivateData=jobs in slurmdbd.conf hides other users' jobs from sacct, so strategy sacct finds " \
                           "no share: remove jobs from slurmdbd's PrivateData, or set MULTITENANT_STRATEGY=squeue")
    out, = rake("doctor", env: { "MULTITENANT_SLURM_BIN" => bin })
    expect(out).not_to include("slurmdbd")

    File.delete(File.join(@ood, "etc/config/clusters.d/beta-multitenant.yml"))
    out, = rake("doctor")
    expect(out).to include("PROBLEM  OOD: MULTITENANT_CLUSTERS maps Slurm cluster mtbeta to OOD cluster beta-multitenant, but no " \
                           "#{@ood}/etc/config/clusters.d/beta-multitenant.yml: its shares are left as they were; fix the mapping or run rake -f …/admin.rake install APPLY=1")
  end

  it "install reads clusters.d as OOD does (.yaml, an entry known only by its own slurm.conf, OOD_CLUSTERS) and keeps the admin's choices" do
    dir = File.join(@ood, "clusters-elsewhere")
    FileUtils.mkdir_p(dir)
    File.write(File.join(dir, "hpc.yaml"), { "v2" => { "metadata" => { "title" => "HPC" }, "job" => { "adapter" => "slurm" } } }.to_yaml)
    # No job.cluster: the Slurm cluster is the one its own configuration reaches.
    File.write(File.join(dir, "beta.yml"), { "v2" => { "job" => { "adapter" => "slurm", "conf" => "/etc/slurm-mtbeta/slurm.conf" } } }.to_yaml)
    env_file = File.join(@ood, "etc/config/apps/dashboard/env")
    File.write(env_file, "OOD_CLUSTERS=#{dir}\n")
    out, = rake("install")
    expect(out.lines).to include("  MULTITENANT_CLUSTERS=mtbeta=beta-multitenant,mtcluster=hpc-multitenant\n", "  MULTITENANT_SUBMIT_CLUSTER=beta\n")
    rake("install", env: { "APPLY" => "1", "MULTITENANT_SUBMIT_CLUSTER" => "hpc" })
    # A later install (a gem upgrade) without the overrides keeps them.
    expect(rake("install", env: { "APPLY" => "1", "MULTITENANT_KEY_DIR" => "" }).first).to eq("everything is installed and up to date\n")
    env = File.read(env_file)
    expect(env).to include("MULTITENANT_SUBMIT_CLUSTER=hpc\n", "MULTITENANT_KEY_DIR=#{key_dir}\n",
                           "MULTITENANT_CLUSTERS=mtbeta=beta-multitenant,mtcluster=hpc-multitenant\n")
    expect(YAML.safe_load(File.read(File.join(dir, "beta-multitenant.yml"))).dig("v2", "job", "conf")).to eq("/etc/slurm-mtbeta/slurm.conf")
    out, = rake("doctor", env: { "MULTITENANT_KEY_DIR" => "" })
    expect(out).to include("ok       Slurm tracks WCKeys (mtbeta)", "ok       Slurm tracks WCKeys (mtcluster)",
                           "ok       users who may publish (--wckey=multitenant) (mtbeta): mtdefault, mtowner",
                           "ok       Slurm: cluster mtbeta answers", "ok       keys: group mtclass: 1 key(s), root:mtclass 0440")

    # A cluster that cannot be asked is one line of list; the others are still listed.
    File.write(File.join(dir, "beta-multitenant.yml"), { "v2" => { "job" => { "adapter" => "slurm", "cluster" => "mtbeta", "bin" => "/nonexistent" } } }.to_yaml)
    out, err, code = rake("list")
    expect([code, out.lines.first.split]).to eq([1, %w[JOB CLUSTER OWNER GROUP APP FORMAT SIZE OPENS-HERE]])
    expect(err).to start_with("multitenant: problem: cluster mtbeta: squeue: cannot run /nonexistent/squeue")
  end

  it "install writes the publisher and submit cluster the admin names in its environment" do
    # Not under /tmp: doctor refuses code in a directory anyone may add names to.
    Dir.mktmpdir("mt-admin-spec", "/var/lib") do |dir|
      copy = File.join(dir, "mtshare")
      FileUtils.cp(MultiTenant.publisher_path, copy)
      File.write(File.join(@ood, "etc/config/clusters.d/owens.yml"), { "v2" => { "job" => { "adapter" => "slurm", "cluster" => "mtcluster" } } }.to_yaml)
      rake("install", env: { "APPLY" => "1", "MULTITENANT_PUBLISHER" => copy, "MULTITENANT_SUBMIT_CLUSTER" => "owens" })
      expect(File.read(env_path)).to include("MULTITENANT_PUBLISHER=#{copy}\n", "MULTITENANT_SUBMIT_CLUSTER=owens\n")
      out, _, code = rake("doctor")
      expect([code, out]).to match([0, include("ok       OOD: the apps submit to cluster owens")])
    end
  end

  it "install warns about each MULTITENANT_* line outside its block that the block also sets; doctor names it" do
    File.write(env_path, "OOD_BC_CARD_TIME=1\nMULTITENANT_LIB=/opt/old/lib\nMULTITENANT_TTL=30\n")
    warning = "warning: #{env_path}:2 sets MULTITENANT_LIB outside the managed block; remove it (the managed block's value is #{File.join(ROOT, "lib")})\n"
    out, = rake("install")
    expect(out.lines.first).to eq(warning)
    expect(out.lines.grep(/\Awarning/).size).to eq(1) # MULTITENANT_TTL is the admin's own setting
    expect(rake("install", env: { "APPLY" => "1" }).first.lines.first).to eq(warning)
    expect(rake("install", env: { "APPLY" => "1" }).first).to eq("#{warning}everything is installed and up to date\n")
    out, = rake("doctor")
    expect(problems(out)).to eq(["PROBLEM  OOD: #{warning.delete_prefix("warning: ").chomp}"])
    File.write(env_path, File.read(env_path).sub("MULTITENANT_LIB=/opt/old/lib\n", ""))
    expect(rake("doctor")[2]).to eq(0)
  end

  it "the dismiss entry's scancel cancels nothing, even for root who could cancel anything" do
    id = submit_share(owner: "mtowner", args: ["--set", "host=n1"])
    rake("install", env: { "APPLY" => "1" })
    scancel = YAML.safe_load(File.read(File.join(@ood, "etc/config/clusters.d/hpc-multitenant.yml"))).dig("v2", "job", "bin_overrides", "scancel")
    _, status = Open3.capture2e(scancel, id)
    expect(status).to be_success
    sleep 1
    expect(running?(id)).to be(true)
  end

  it "lists the shared jobs, decodes one, and says what cannot be opened here" do
    id = submit_share(owner: "mtowner", args: ["--set", "ollama_url=http://n1:4000"])
    plain, = run_as("mtowner", "sbatch", "--parsable", "--wckey=multitenant", "-J", "starting", "-o", "/dev/null", "--wrap", "sleep 600")
    (@jobs ||= []) << plain.strip
    # The exact JOB column: a job id can also be part of another job's id or SIZE.
    poll("job listed") { rake("list").first.lines.any? { |l| l.split.first == plain.strip } }
    lines = rake("list").first.lines.map(&:split)
    expect(lines.first).to eq(%w[JOB CLUSTER OWNER GROUP APP FORMAT SIZE OPENS-HERE])
    expect(lines).to include([id, "mtcluster", "mtowner", "mtclass", "Ollama_API", "2", job_name(id).size.to_s, "yes"])
    expect(lines).to include([plain.strip, "mtcluster", "mtowner", "-", "-", "-", "8", "not", "shared", "yet"])
    out, = rake("decode", env: { "JOB" => id })
    expect(out).to include("job #{id}@mtcluster of mtowner: group mtclass, format 2", %(ollama_url = "http://n1:4000"))
    _, err, code = rake("decode", env: { "JOB" => "999999" })
    expect([code, err]).to eq([1, "multitenant: no running job 999999 with --wckey=multitenant\n"])
  end

  def legacy_lines(out) = out.lines.map(&:chomp).grep(/\A(ok|PROBLEM)\s+legacy:/)

  it "doctor and list say so when no running job publishes in the first implementation's format, whatever MULTITENANT_LEGACY says" do
    current = submit_share(owner: "mtowner", args: ["--set", "host=n1"])
    # An earlier example's legacy job may still be ending.
    poll("no running legacy job") { !Open3.capture2("squeue", "-h", "-t", "R", "-O", "Name:").first.include?("sys/dashboard|") }
    none = "legacy: no running job publishes in the first implementation's format: MULTITENANT_LEGACY can be off"
    out, = rake("doctor", env: { "MULTITENANT_LEGACY" => "false" })
    expect(legacy_lines(out)).to eq(["ok       #{none}"])
    out, = rake("doctor", env: { "MULTITENANT_LEGACY" => "true" })
    expect(legacy_lines(out)).to eq(["ok       #{none} (it is on: remove it from #{env_path}, then restart the dashboards)"])
    %w[true false].each do |legacy|
      out, _, code = rake("list", env: { "MULTITENANT_LEGACY" => legacy })
      expect(code).to eq(0)
      expect(out.lines.map(&:split)).to include([current, "mtcluster", "mtowner", "mtclass", "Ollama_API", "2", job_name(current).size.to_s, "yes"])
      expect(out.lines.grep(/legacy/)).to eq([])
    end
  end

  it "doctor and list name whose running jobs publish in the first implementation's format, on every mapped cluster: " \
     "information while MULTITENANT_LEGACY is on, a problem while it is off" do
    current = submit_share(owner: "mtowner", args: ["--set", "host=n1"])
    here = legacy_share
    # Nothing mapped yet: the plain commands' cluster.
    out, _, code = rake("doctor", env: { "MULTITENANT_LEGACY" => "0" })
    expect(code).to eq(1)
    expect(legacy_lines(out)).to eq(["PROBLEM  legacy: 1 running job(s) publish in the first implementation's format (mtowner: 1), which the " \
                                     "dashboards do not read (MULTITENANT_LEGACY is off): their owners move to `mtshare publish`, or set " \
                                     "MULTITENANT_LEGACY=true in #{env_path} while they do"])

    File.write(File.join(@ood, "etc/config/clusters.d/beta.yml"), { "v2" => { "metadata" => { "title" => "Beta" },
                                                                              "job" => { "adapter" => "slurm", "cluster" => "mtbeta" } } }.to_yaml)
    rake("install", env: { "APPLY" => "1" })
    expect(File.read(env_path)).to include("MULTITENANT_CLUSTERS=mtbeta=beta-multitenant,mtcluster=hpc-multitenant\n")
    there = legacy_share(owner: "mtdefault", cluster: "mtbeta")
    count = "2 running job(s) publish in the first implementation's format (mtdefault: 1, mtowner: 1)"

    out, _, code = rake("doctor", env: { "MULTITENANT_LEGACY" => "true" })
    expect(legacy_lines(out)).to eq(["ok       legacy: #{count}; MULTITENANT_LEGACY is on and reads them, so the migration window must stay " \
                                     "open until their owners move to `mtshare publish` or the jobs end"])
    expect([code, problems(out)]).to eq([0, []])
    out, _, code = rake("doctor", env: { "MULTITENANT_LEGACY" => "false" })
    expect([code, problems(out)]).to eq([1, ["PROBLEM  legacy: #{count}, which the dashboards do not read (MULTITENANT_LEGACY is off): " \
                                             "their owners move to `mtshare publish`, or set MULTITENANT_LEGACY=true in #{env_path} while they do"]])

    { "true" => "yes (legacy format, read while MULTITENANT_LEGACY is on)", "false" => "no (legacy format, MULTITENANT_LEGACY is off)" }.each do |legacy, opens|
      out, _, code = rake("list", env: { "MULTITENANT_LEGACY" => legacy })
      expect(code).to eq(0)
      rows = out.lines.map(&:split)
      expect(rows).to include([here, "mtcluster", "mtowner", "mtclass", "Legacy_API", "legacy", job_name(here).size.to_s, *opens.split],
                              [there, "mtbeta", "mtdefault", "mtclass", "Legacy_API", "legacy", job_name_on("mtbeta", there).size.to_s, *opens.split],
                              [current, "mtcluster", "mtowner", "mtclass", "Ollama_API", "2", job_name(current).size.to_s, "yes"])
      then_ = legacy == "true" ? "MULTITENANT_LEGACY is on: keep it on until then" : "the dashboards do not read them (MULTITENANT_LEGACY is off)"
      expect(out.lines.last).to eq("legacy: #{count}: their owners move to `mtshare publish`; #{then_}\n")
      expect(out.lines.grep(/\Alegacy:/).size).to eq(1)
    end
  ensure
    cancel_cluster_jobs
  end

  it "keygen writes a key with the right owner and mode, and refuses to overwrite it" do
    dir = File.join(@ood, "keys")
    out, _, code = rake("keygen", env: { "MULTITENANT_KEY_DIR" => dir, "GROUP" => "mtclass" })
    expect([code, out]).to eq([0, "wrote #{dir}/mtclass.key\n"])
    stat = File.stat(File.join(dir, "mtclass.key"))
    expect([stat.uid, Etc.getgrgid(stat.gid).name, stat.mode & 0o777]).to eq([0, "mtclass", 0o440])
    _, err, code = rake("keygen", env: { "MULTITENANT_KEY_DIR" => dir, "GROUP" => "mtclass" })
    expect([code, err]).to eq([1, "multitenant: #{dir}/mtclass.key: already exists: to add a new key and keep the old ones, use ROTATE=1\n"])
  end

  it "installs twice under LANG=C" do
    rake("install", env: { "APPLY" => "1", "LANG" => "C", "LC_ALL" => "C" })
    out, err, code = rake("install", env: { "APPLY" => "1", "LANG" => "C", "LC_ALL" => "C" })
    expect([code, err, out]).to eq([0, "", "everything is installed and up to date\n"])
  end

  it "purge acts as the user: a data root that leads into root's files is refused and left alone" do
    victim = File.join(@ood, "root-owned")
    FileUtils.mkdir_p(File.join(victim, "batch_connect/db"))
    File.write(File.join(victim, "batch_connect/db/precious"), "x")
    home = File.join(lab, "home/mtmember")
    FileUtils.mkdir_p(home)
    FileUtils.chown("mtmember", nil, home)
    File.symlink(victim, File.join(home, "dr"))
    _, err, code = rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => File.join(home, "dr") })
    expect(code).to eq(1)
    expect(err).to match(%r{^problem: data root #{home}/dr(: Permission denied| is not a directory owned by uid)})
    expect(Dir.children(victim)).to eq(["batch_connect"])
    expect(File.read(File.join(victim, "batch_connect/db/precious"))).to eq("x")
  end

  it "purge keeps its record when another discovery holds the card lock" do
    submit_share(owner: "mtowner", args: ["--set", "host=#{node_of}"]) # a node of the job: else no card
    root = dataroot_for("mtmember")
    discover_as("mtmember", dataroot: root)
    lock = File.open(File.join(root, "multitenant/.lock"))
    lock.flock(File::LOCK_EX)
    _, err, code = rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => root })
    expect(code).to eq(1)
    expect(err).to include("another discovery of this user holds the card lock")
    expect(File.exist?(File.join(root, "multitenant/cards.json"))).to be(true)
    lock.close
    expect(rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => root })[2]).to eq(0)
  end

  it "purge removes every card the gem wrote for a user, and nothing else" do
    submit_share(owner: "mtowner", args: ["--set", "host=#{node_of}"]) # a node of the job: else no card
    root = dataroot_for("mtmember")
    discover_as("mtmember", dataroot: root)
    own = File.join(root, "batch_connect/db/my-own-session")
    File.write(own, "{}")
    expect(Dir[File.join(root, "batch_connect/db/*")].size).to eq(2)
    out, _, code = rake("purge", env: { "USER_NAME" => "mtmember", "DATAROOT" => root })
    expect([code, out]).to eq([0, "removed 1 card(s) of mtmember from #{root}\n"])
    expect(Dir[File.join(root, "batch_connect/db/*")]).to eq([own])
    expect(Dir.exist?(File.join(root, "multitenant"))).to be(false)
  end
end

# doctor's checks of the files themselves, on fixture trees (no cluster): who can change the code every
# dashboard and job runs, and who an ACL lets read a key.
RSpec.describe "admin doctor: code and key files" do
  before { require_root! }

  before(:all) { require "multitenant/admin" }

  def doctor(check, admin)
    problems = []
    fine = []
    admin.public_send(check, problems, fine)
    [problems, fine]
  end

  describe "the code dashboards, Delete and jobs run" do
    # Not under /tmp: its sticky, world-writable directory is a problem of its own (below).
    around do |example|
      dir = Dir.mktmpdir("mt-doctor-", "/var/lib")
      File.chmod(0o755, dir)
      @dir = dir
      @gem = File.join(dir, "gem")
      { "lib/multitenant.rb" => 0o644, "lib/multitenant/config.rb" => 0o644, "lib/multitenant/multitenant.so" => 0o755,
        "ood/bin/mt-dismiss-scancel" => 0o755, "libexec/mtshare" => 0o755 }.each do |f, mode|
        FileUtils.mkdir_p(File.dirname(File.join(@gem, f)), mode: 0o755)
        File.write(File.join(@gem, f), "x")
        File.chmod(mode, File.join(@gem, f))
      end
      example.run
    ensure
      FileUtils.rm_rf(dir) if dir
    end

    def code(gem = @gem)
      { File.join(gem, "lib/multitenant.rb") => :dashboard, File.join(gem, "lib/multitenant") => :dashboard,
        File.join(gem, "lib/multitenant/multitenant.so") => :dashboard, File.join(gem, "ood/bin/mt-dismiss-scancel") => :delete,
        File.join(gem, "libexec/mtshare") => :job }
    end

    def check(gem = @gem) = doctor(:doctor_code, MultiTenant::Admin.new(ood_etc: "/nonexistent", env: {}, code_paths: code(gem)))

    it "finds nothing in a tree root owns, and that only root can write" do
      expect(check).to eq([[], ["code: the gem's lib and native library, the dismiss command, the publisher and every directory above them are root's alone"]])
    end

    it "names a directory another user owns that holds a symlink on the way, though the code is root's" do
      # link -> hop/to (root's symlink), hop/to -> the gem, and mtowner owns hop: mtowner can point "to"
      # at code of their own, which every dashboard would then load.
      hop = File.join(@dir, "hop")
      FileUtils.mkdir_p(hop, mode: 0o755)
      File.symlink(@gem, File.join(hop, "to"))
      FileUtils.chown("mtowner", nil, hop)
      File.symlink(File.join(hop, "to"), File.join(@dir, "link"))
      expect(check(File.join(@dir, "link")).first).to include(
        "code: #{hop} is owned by mtowner:root, mode 0755, and every dashboard loads code under it: chown root:root #{hop}; chmod go-w #{hop}"
      )
    end

    it "checks the files under a symlinked subdirectory of the code" do
      other = File.join(@dir, "other")
      FileUtils.mkdir_p(other, mode: 0o755)
      rb = File.join(other, "extra.rb")
      File.write(rb, "x")
      FileUtils.chown("mtowner", nil, rb)
      File.symlink(other, File.join(@gem, "lib/multitenant/extra"))
      expect(check.first).to eq(["code: #{rb} is owned by mtowner:root, mode 0644, and every dashboard loads code under it: chown root:root #{rb}; chmod go-w #{rb}"])
    end

    it "still finds nothing in a tree root owns, reached through root's symlinks" do
      File.symlink(@gem, File.join(@dir, "link"))
      File.symlink(File.join(@gem, "lib/multitenant"), File.join(@gem, "lib/multitenant/loop"))
      expect(check(File.join(@dir, "link")).first).to eq([])
    end

    it "names a group-writable directory above the code once, with the fix" do
      lib = File.join(@gem, "lib")
      File.chmod(0o775, lib)
      expect(check.first).to eq(["code: #{lib} is owned by root:root, mode 0775, and every dashboard loads code under it: chown root:root #{lib}; chmod go-w #{lib}"])
    end

    it "names a file another user owns, and a world-writable file" do
      so = File.join(@gem, "lib/multitenant/multitenant.so")
      FileUtils.chown("mtowner", "mtclass", so)
      mtshare = File.join(@gem, "libexec/mtshare")
      File.chmod(0o757, mtshare)
      scancel = File.join(@gem, "ood/bin/mt-dismiss-scancel")
      File.chmod(0o4777, scancel)
      expect(check.first).to eq([
        "code: #{so} is owned by mtowner:mtclass, mode 0755, and every dashboard loads it: chown root:root #{so}; chmod go-w #{so}",
        "code: #{scancel} is owned by root:root, mode 4777, and every card's Delete runs it: chown root:root #{scancel}; chmod go-w #{scancel}",
        "code: #{mtshare} is owned by root:root, mode 0757, and every share's job runs it: chown root:root #{mtshare}; chmod go-w #{mtshare}"
      ])
    end

    it "checks every file under the lib directory, and a named user's write ACL (it shows as group write)" do
      rb = File.join(@gem, "lib/multitenant/config.rb")
      system("setfacl", "-m", "u:nobody:rw", rb, exception: true)
      expect(check.first).to eq(["code: #{rb} is owned by root:root, mode 0664, and every dashboard loads it: chown root:root #{rb}; chmod go-w #{rb}"])
    end

    it "follows a symlink to where the code really is" do
      elsewhere = File.join(File.dirname(@gem), "elsewhere")
      FileUtils.mkdir_p(elsewhere)
      FileUtils.mv(File.join(@gem, "libexec"), elsewhere)
      File.symlink(File.join(elsewhere, "libexec"), File.join(@gem, "libexec"))
      expect(check.first).to eq([])
      FileUtils.chown("mtowner", nil, elsewhere)
      expect(check.first).to eq(["code: #{elsewhere} is owned by mtowner:root, mode 0755, and every share's job runs code under it: " \
                                 "chown root:root #{elsewhere}; chmod go-w #{elsewhere}"])
    end

    it "names a sticky world-writable directory above the code: code must not live there" do
      shared_tmpdir do |tmp|
        FileUtils.cp_r(@gem, tmp)
        tmp_root = File.dirname(tmp)
        mode = format("%04o", File.stat(tmp_root).mode & 0o7777)
        expect(check(File.join(tmp, "gem")).first).to eq(["code: #{tmp_root} is owned by root:root, mode #{mode}: anyone may add names in it, " \
                                                          "and every dashboard loads code under it: move that code out of #{tmp_root}"])
      end
    end
  end

  describe "ACLs on the key directory and key files" do
    around do |example|
      shared_tmpdir do |dir|
        @keys = File.join(dir, "keys")
        MultiTenant::KeyDir.new(@keys).generate(group: "mtclass")
        example.run
      end
    end

    def check(getfacl: "getfacl") = doctor(:doctor_key_acls, MultiTenant::Admin.new(ood_etc: "/nonexistent", env: { "MULTITENANT_KEY_DIR" => @keys }, getfacl: getfacl))
    def setfacl(*args) = system("setfacl", *args, exception: true)

    it "finds none on keys as keygen makes them" do
      expect(check).to eq([[], ["keys: no ACL widens who can read #{@keys} or its key files"]])
    end

    it "names a key file, or the directory, whose ACL lets a named user or group in" do
      key = File.join(@keys, "mtclass.key")
      setfacl("-m", "u:nobody:r", key)
      expect(check.first).to eq(["keys: #{key} has an ACL that widens who can read it (user:nobody:r--, mask::r--): setfacl -b #{key}"])
      setfacl("-b", key)
      setfacl("-m", "g:nogroup:rx", @keys)
      expect(check.first).to eq(["keys: #{@keys} has an ACL that widens who can read the keys in it (group:nogroup:r-x, mask::r-x): setfacl -b #{@keys}"])
      setfacl("-b", @keys)
      expect(check.first).to eq([])
    end

    it "names a default ACL on the directory, which every new key file inherits" do
      setfacl("-d", "-m", "u:nobody:r", @keys)
      MultiTenant::KeyDir.new(@keys).generate(site: true)
      site = File.join(@keys, "@site.key")
      expect(check.first).to eq(["keys: #{@keys} has a default ACL that every new key file there inherits (default:user:nobody:r--, default:mask::r-x): setfacl -k #{@keys}",
                                 "keys: #{site} has an ACL that widens who can read it (user:nobody:r--, mask::r--): setfacl -b #{site}"])
    end

    it "says in one line when getfacl is missing" do
      expect(check(getfacl: "/nonexistent/getfacl").first).to eq(["keys: cannot check key files' ACLs: getfacl not found (apt install acl)"])
    end
  end
end
