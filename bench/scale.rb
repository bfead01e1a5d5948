# frozen_string_literal: true

# Discovery at scale on recorded scheduler output: `rake bench:scale` (as root; needs the test users,
# which `spec/cluster/testcluster up` creates; no Slurm daemon is used). squeue is an executable that
# prints a recorded answer (N shares of mtowner for mtclass, N jobs of another WCKey and N plain jobs)
# with the query's own random tokens put in, so everything else is the product as a dashboard runs it:
# MultiTenant.discover in one Ruby process as mtmember. SIZES lists shares:running jobs (the others
# alternate between another WCKey and none); RUNS=15 rounds, median.
require_relative "support"
require "yaml"

LAB = "/var/tmp/multitenant-scale"
RUNS = Integer(ENV.fetch("RUNS", "15"))
SIZES = ENV.fetch("SIZES", "25:50 100:200 500:1000 2000:4000 2000:10000 2000:50000 10000:50000").split.map { |s| s.split(":").map { |x| Integer(x) } }

# What an earlier run left is removed at the end, not here: ext4 avoids reusing inodes freed in the last
# minutes, so creating files right after deleting tens of thousands is far slower than a first start is.
abort "#{LAB} exists: remove it and wait a few minutes (see above)" if File.exist?(LAB)
at_exit { FileUtils.rm_rf(LAB) }
FileUtils.mkdir_p(LAB, mode: 0o755)
File.chmod(0o755, LAB)
keys = MultiTenant::KeyDir.new(File.join(LAB, "keys"))
keys.generate(group: "mtclass")
key = keys.sealing_key("mtclass")
# OOD's clusters.d entry that install writes for the cluster (the hidden dismiss copy).
FileUtils.mkdir_p(File.join(LAB, "clusters.d"))
File.write(File.join(LAB, "clusters.d/mtcluster-multitenant.yml"),
           YAML.dump("v2" => { "metadata" => { "hidden" => true }, "job" => { "adapter" => "slurm" } }))

# A recorded answer with placeholders for the two tokens, and a squeue that prints it with the
# tokens of the query (the last argument is the -O format: JobID:<sep>,…,Name:<term>).
def recorded(shares, total, key)
  dir = File.join(LAB, "n#{shares}-#{total}")
  FileUtils.mkdir_p(File.join(dir, "bin"))
  File.open(File.join(dir, "answer"), "w") do |f|
    id = 2_000_000
    every = total / shares
    total.times do |j|
      id += 1
      if (j % every).zero? && j / every < shares
        i = j / every
        node = format("node%04d", i % 1000)
        msg = { "session_id" => "0f8fad5b-d9cb-469f-a165-#{format("%012d", i)}", "app" => "Ollama_#{i}", "method" => "card",
                "delivery" => "sys/multitenant-delivery_default",
                "connection" => { "host" => node, "port" => "41234", "ollama_url" => "http://#{node}:41234" } }
        name = MultiTenant::Envelope.seal(msg, key: key, group: "mtclass", job_id: id.to_s, owner: "mtowner", cluster: "mtcluster")
        f.write("#{id}@F@mtowner@F@multitenant@F@mtcluster@F@0@F@#{node}@F@#{name}@T@\n")
      elsif j.odd?
        f.write("#{id}@F@mtmember@F@other@F@mtcluster@F@0@F@node0001@F@sys/dashboard/sys/bc_desktop@T@\n")
      else
        f.write("#{id}@F@mtoutsider@F@*@F@mtcluster@F@0@F@node[0002-0004]@F@sleep@T@\n")
      end
    end
  end
  File.write(File.join(dir, "bin/squeue"), <<~SH)
    #!/bin/sh
    for a; do fmt=$a; done
    sep=${fmt#JobID:}; sep=${sep%%,*}; term=${fmt##*Name:}
    exec sed -e "s|@F@|$sep|g" -e "s|@T@|$term|g" #{File.join(dir, "answer")}
  SH
  File.chmod(0o755, File.join(dir, "bin/squeue"))
  FileUtils.chmod_R("a+rX", dir)
  dir
end

PROBE = <<~'RUBY'
  require "multitenant"; require "json"; require "open3"; require "fileutils"; require "objspace"
  dir, runs, keys = ARGV[0], Integer(ARGV[1]), ARGV[2]
  def ms = Process.clock_gettime(Process::CLOCK_MONOTONIC) * 1000
  def rss_kb = File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  def median(list) = list.sort[list.size / 2]
  config = MultiTenant::Config.new(key_dir: keys, bin_dir: File.join(dir, "bin"), clusters: { "mtcluster" => "mtcluster-multitenant" },
                                   max_cards: 10_000, max_cards_per_owner: 10_000, timeout: 60,
                                   clusters_dir: File.join(File.dirname(keys), "clusters.d"))
  home = File.join(dir, "home")
  FileUtils.mkdir_p(File.join(home, "warm"))
  GC.start
  before = { rss: rss_kb, mem: ObjectSpace.memsize_of_all }
  first = MultiTenant.discover(config: config, dataroot: File.join(home, "warm"))
  GC.start
  after = { rss: rss_kb, mem: ObjectSpace.memsize_of_all }
  n = first.size
  # Every share's card present (a slow disk may need more than one run's write budget).
  MultiTenant.discover(config: config, dataroot: File.join(home, "warm")) until MultiTenant.cards["held_back"].empty?
  fmt = "JobID:@f@,UserName:@f@,WCKey:@f@,Cluster:@f@,RestartCnt:@f@,NodeList:@f@,Name:@x@"
  t = { bare: [], specs: [], later: [], first: [], raw: [], created: [] }
  runs.times do |i|
    s = ms; Open3.capture2(File.join(dir, "bin/squeue"), "--all", "--noheader", "--states=RUNNING", "-O", fmt); t[:bare] << ms - s
    s = ms; MultiTenant.discover!(config: config); t[:specs] << ms - s
    s = ms; MultiTenant.discover!(config: config, dataroot: File.join(home, "warm")); t[:later] << ms - s
    root = FileUtils.mkdir_p(File.join(home, "first#{i}")).first
    # Not discover!: a slow disk may spend the 2 s write budget; the cards written are counted.
    s = ms; MultiTenant.discover(config: config, dataroot: root); t[:first] << ms - s
    t[:created] << MultiTenant.cards["created"].size
    # The same files in the same layout by a bare loop (write, rename; no checks, no fsync): what the
    # filesystem itself costs at this moment.
    raw = FileUtils.mkdir_p(File.join(home, "raw#{i}", "batch_connect/db")).first
    out = FileUtils.mkdir_p(File.join(home, "raw#{i}", "batch_connect/sys/multitenant-delivery_default/output")).first
    body = "x" * 300
    s = ms
    t[:created].last.times do |c|
      d = File.join(out, "card#{c}")
      Dir.mkdir(d)
      File.write(File.join(d, ".c.tmp"), body); File.rename(File.join(d, ".c.tmp"), File.join(d, "connection.yml"))
      File.write(File.join(raw, ".d#{c}.tmp"), body); File.rename(File.join(raw, ".d#{c}.tmp"), File.join(raw, "card#{c}"))
    end
    t[:raw] << ms - s
  end
  puts JSON.dump(n: n, **t.transform_values { |v| median(v) },
                 retained_rss_kb: after[:rss] - before[:rss], retained_objspace_b: after[:mem] - before[:mem], peak_rss_kb: File.read("/proc/self/status")[/^VmHWM:\s+(\d+)/, 1].to_i)
RUBY

rows = SIZES.map do |shares, total|
  dir = recorded(shares, total, key)
  FileUtils.mkdir_p(File.join(dir, "home"))
  FileUtils.chown("mtmember", nil, File.join(dir, "home"))
  out = sh!("runuser", "-u", "mtmember", "--", RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), "-e", PROBE, dir, RUNS.to_s, File.join(LAB, "keys"))
  JSON.parse(out.lines.last).merge("total" => total).tap { |r| warn r.inspect }
end

puts "| shares : running jobs | recorded squeue (spawn + print) | discover, specs only | later start (cards present) | " \
     "later − bare, per share | first start (empty data root) | first − later, per card | bare loop, same files, per card | " \
     "retained after discover, per share (RSS / ObjectSpace) |"
puts "|---|---|---|---|---|---|---|---|---|---|"
rows.each do |r|
  n = r["n"]
  cards = r["created"]
  puts format("| %d : %d | %.1f ms | %.1f ms | %.1f ms | %.1f µs | %.1f ms | %d | %.2f ms | %.2f ms | %.1f KB / %.1f KB |", n, r["total"], r["bare"], r["specs"], r["later"],
              (r["later"] - r["bare"]) * 1000 / n, r["first"], cards, (r["first"] - r["later"]) / cards, r["raw"] / cards,
              r["retained_rss_kb"].to_f / n, r["retained_objspace_b"] / 1024.0 / n)
end
