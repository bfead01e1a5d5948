# frozen_string_literal: true

# Discovery cost on the real test cluster: `rake bench:discover` (as root; starts the cluster).
# For 50 and 200 running jobs, half of them shared with mtclass, times MultiTenant.discover as a
# member with each strategy, with and without cards, next to the bare scheduler commands it runs.
require_relative "support"
require "yaml"

LAB = "/var/tmp/multitenant-bench"
RUNS = Integer(ENV.fetch("RUNS", "20"))

def as(user, *cmd) = ["runuser", "-u", user, "--", *cmd]

sh!(File.join(ROOT, "spec/cluster/testcluster"), "up")
FileUtils.rm_rf(LAB)
FileUtils.mkdir_p(LAB)
# OOD's clusters.d entry that install writes for the test cluster (the hidden dismiss copy).
FileUtils.mkdir_p(File.join(LAB, "clusters.d"))
File.write(File.join(LAB, "clusters.d/mtcluster-multitenant.yml"),
           YAML.dump("v2" => { "metadata" => { "hidden" => true }, "job" => { "adapter" => "slurm" } }))
File.chmod(0o755, LAB)
keys = MultiTenant::KeyDir.new(File.join(LAB, "keys"))
keys.generate(group: "mtclass")
key = keys.sealing_key("mtclass")

def wait_for(what)
  200.times { return if yield; sleep 0.25 }
  raise "timed out: #{what}"
end

# A share's host must be one of its job's nodes: the test cluster's one node is this host (testcluster).
node = `hostname -s`.strip
results = []
[50, 200].each do |total|
  system("scancel", "-u", "mtowner")
  system("scancel", "-u", "mtmember")
  wait_for("queue empty") { sh!("squeue", "-h", "-o", "%i").strip.empty? }
  shared = (1..total / 2).map do
    sh!(*as("mtowner", "sbatch", "--parsable", "--wckey=multitenant", "-o", "/dev/null", "--chdir", LAB, "--wrap", "sleep 3600")).strip
  end
  (total - shared.size).times { sh!(*as("mtmember", "sbatch", "--parsable", "-o", "/dev/null", "--chdir", LAB, "--wrap", "sleep 3600")) }
  shared.each_with_index do |id, i|
    msg = { "session_id" => "s#{i}", "app" => "Ollama_#{i}", "method" => "card", "delivery" => "sys/multitenant-delivery_default",
            "connection" => { "host" => node, "ollama_url" => "http://#{node}:#{4000 + i}" } }
    sh!("scontrol", "update", "JobId=#{id}", "JobName=#{MultiTenant::Envelope.seal(msg, key: key, group: "mtclass", job_id: id, owner: "mtowner", cluster: "mtcluster")}")
  end
  wait_for("#{total} running") { sh!("squeue", "-h", "-t", "R", "-o", "%i").lines.size == total }
  wait_for("accounting") { sh!("sacct", "-a", "-X", "-n", "-P", "--state=RUNNING", "--wckeys=multitenant", "--format=JobIDRaw").lines.size == shared.size }

  dataroot = File.join(LAB, "home/mtmember/ondemand/data/sys/dashboard")
  FileUtils.rm_rf(File.join(LAB, "home"))
  FileUtils.mkdir_p(dataroot)
  FileUtils.chown_R("mtmember", nil, File.join(LAB, "home"))
  File.chmod(0o755, File.join(LAB, "home"))

  probe = <<~RUBY
    require "multitenant"; require "json"; require "open3"
    def median(runs) = Array.new(runs) { t = Process.clock_gettime(Process::CLOCK_MONOTONIC); yield; (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) * 1000 }.sort[runs / 2]
    runs = #{RUNS}
    ids = Open3.capture2("sacct", "-a", "-X", "-n", "-P", "--state=RUNNING", "--wckeys=multitenant", "--format=JobIDRaw")[0].split.join(",")
    out = {}
    out["bare squeue (one call, all running)"] = median(runs) { Open3.capture2("squeue", "--all", "--noheader", "--states=RUNNING", "-O", "JobID:@f@,UserName:@f@,WCKey:@f@,Cluster:@f@,RestartCnt:@f@,NodeList:@f@,Name:@x@") }
    out["bare sacct (wckey filter)"] = median(runs) { Open3.capture2("sacct", "--allocations", "--noheader", "--parsable2", "--delimiter=@f@", "--allusers", "--state=RUNNING", "--wckeys=multitenant", "--format=JobIDRaw,User,Cluster,WCKey") }
    out["bare squeue -j <shared ids>"] = median(runs) { Open3.capture2("squeue", "--all", "--noheader", "--states=RUNNING", "--jobs", ids, "-O", "JobID:@f@,UserName:@f@,RestartCnt:@f@,NodeList:@f@,Name:@x@") }
    %w[squeue sacct].each do |strategy|
      config = MultiTenant::Config.new(key_dir: #{File.join(LAB, "keys").inspect}, strategy: strategy, clusters: { "mtcluster" => "mtcluster-multitenant" }, max_cards: 10_000, max_cards_per_owner: 10_000,
                                     clusters_dir: #{File.join(LAB, "clusters.d").inspect})
      out["shares found by \#{strategy}"] = MultiTenant.discover!(config: config).size
      out["discover, \#{strategy} (specs only)"] = median(runs) { MultiTenant.discover!(config: config) }
      MultiTenant.discover!(config: config, dataroot: #{dataroot.inspect})
      out["discover, \#{strategy} + cards (steady state)"] = median(runs) { MultiTenant.discover!(config: config, dataroot: #{dataroot.inspect}) }
    end
    puts JSON.generate(out)
  RUBY
  times = JSON.parse(sh!(*as("mtmember", RbConfig.ruby, "-I", File.join(ROOT, "lib"), "-e", probe), chdir: LAB).lines.last)
  results << [total, times]
end
system("scancel", "-u", "mtowner")
system("scancel", "-u", "mtmember")

bare = { "squeue" => ->(t) { t["bare squeue (one call, all running)"] },
         "sacct" => ->(t) { t["bare sacct (wckey filter)"] + t["bare squeue -j <shared ids>"] } }
puts "| median of #{RUNS} runs, ms, as mtmember | #{results.map { |n, _| "#{n} running (#{n / 2} shared)" }.join(" | ")} |"
puts "|---|#{results.map { "---" }.join("|")}|"
results.first[1].each_key do |row|
  cells = results.map do |_, t|
    strategy = row[/discover, (\w+)/, 1]
    ratio = strategy ? format(" (%.2f× bare)", t[row] / bare[strategy].call(t)) : ""
    t[row].is_a?(Integer) ? t[row].to_s : format("%.1f%s", t[row], ratio)
  end
  puts "| #{row} | #{cells.join(" | ")} |"
end
