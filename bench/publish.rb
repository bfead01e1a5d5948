# frozen_string_literal: true

# Publish time inside real jobs on the test cluster: `rake bench:publish` (as root; starts the cluster).
# On a shared machine hold the cluster lock around it: `flock /var/tmp/mt-cluster.lock rake bench:publish`.
#
# Every job is mtowner's, WCKey multitenant, and publishes with the real `mtshare publish`. Times are taken
# in the job with bash's $EPOCHREALTIME (no process per reading), in milliseconds:
# - seal only: MultiTenant::Envelope.seal in this process (Ruby to the Rust core), and
#   `mtshare publish --dry-run` in a job (process start, key file, seal, name printed);
# - steady job: RUNS publishes in one job that is already in accounting, beside a bare
#   `scontrol update JobId= JobName=`;
# - at job start: RUNS jobs one after another, then BURSTS times BURST jobs submitted together (a class
#   starting its services), each publishing as its first command, as a service app does;
# - for each publish: process start to exit, and to the new name shown by squeue (polled back to back
#   until it shows; the polls are counted), and slurmctld's own time for the rename
#   (`_slurm_rpc_update_job: complete … usec=` in its log).
#
# RUNS=50, BURST=20, BURSTS=3 by default. MTSHARE=path times another mtshare build. STRACE=1 runs every
# publish under `strace -f -tt -T` and prints the slow calls of each one over 500 ms. JSON=path also
# writes every sample there.
require_relative "support"
require "etc"

LAB = "/var/tmp/multitenant-bench-publish"
RUNS = Integer(ENV.fetch("RUNS", "50"))
BURST = Integer(ENV.fetch("BURST", "20"))
BURSTS = Integer(ENV.fetch("BURSTS", "3"))
STRACE = ENV["STRACE"] == "1"
SLOW_MS = 500
CTLD_LOG = "/var/log/slurm/slurmctld.log"

def as(user, *cmd) = ["runuser", "-u", user, "--", "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", *cmd]

def wait_for(what, timeout: 120)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
  until (r = yield)
    raise "timed out: #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

    sleep 0.05
  end
  r
end

sh!(File.join(ROOT, "spec/cluster/testcluster"), "up")
FileUtils.rm_rf(LAB)
FileUtils.mkdir_p(File.join(LAB, "out"))
File.chmod(0o755, LAB)
FileUtils.chown("mtowner", nil, File.join(LAB, "out"))
FileUtils.cp(ENV.fetch("MTSHARE", MultiTenant.publisher_path), File.join(LAB, "mtshare"))
keys = MultiTenant::KeyDir.new(File.join(LAB, "keys"))
keys.generate(group: "mtclass")
node = `hostname -s`.strip

# The job: `job.sh start|steady RUNS`. Times with bash's $EPOCHREALTIME (no process per reading); one
# line per sample in out/<job id>: "<kind> <run> <ms> [<squeue polls>]".
File.write(File.join(LAB, "job.sh"), <<~'BASH')
  #!/bin/bash
  set -u
  mode=$1 runs=$2 lab=$LAB
  out=$lab/out/$SLURM_JOB_ID
  ms() { echo $(( (${2/./} - ${1/./}) / 1000 )).$(( (${2/./} - ${1/./}) % 1000 / 100 )); }
  trace() { if [ -n "${STRACE:-}" ]; then strace -f -tt -T -o "$lab/out/trace.$SLURM_JOB_ID.$1" "${@:2}"; else "${@:2}"; fi; }
  publish() { # run
    trace "$1" "$lab/mtshare" publish --group mtclass --app "Bench $1" --set host="$NODE" \
      --set url="http://$NODE:$((4000 + $1))/" >/dev/null
  }
  # Until squeue shows a name other than $1 that is a share: polled back to back, each poll one RPC.
  visible() {
    polls=0
    while [ $polls -lt 1000 ]; do
      polls=$((polls + 1))
      name=$(squeue -h -j "$SLURM_JOB_ID" -O Name:)
      [[ $name != "$1" && $name == mt\|* ]] && return 0
    done
    return 1
  }
  name=$(squeue -h -j "$SLURM_JOB_ID" -O Name:)
  if [ "$mode" = steady ]; then
    # In accounting first: the job has its database index, as any job a few seconds old.
    until sacct -n -X -P -j "$SLURM_JOB_ID" -o JobIDRaw | grep -qx "$SLURM_JOB_ID"; do sleep 0.1; done
  fi
  for ((i = 0; i < runs; i++)); do
    if [ "$mode" = steady ]; then
      a=$EPOCHREALTIME; "$lab/mtshare" publish --group mtclass --app "Bench $i" --set host="$NODE" --dry-run >/dev/null; b=$EPOCHREALTIME
      echo "dry_run $i $(ms $a $b)" >> "$out"
      a=$EPOCHREALTIME; scontrol update JobId="$SLURM_JOB_ID" JobName="plain-$i"; b=$EPOCHREALTIME
      echo "bare_scontrol $i $(ms $a $b)" >> "$out"
      name=plain-$i
    fi
    a=$EPOCHREALTIME; publish "$i"; rc=$?; b=$EPOCHREALTIME
    visible "$name" || rc=99
    c=$EPOCHREALTIME
    [ $rc = 0 ] || { echo "failed $i $rc" >> "$out"; exit 1; }
    echo "publish $i $(ms $a $b)" >> "$out"
    echo "visible $i $(ms $a $c) $polls" >> "$out"
  done
  echo "done" >> "$out"
BASH
File.chmod(0o755, File.join(LAB, "job.sh"))

def submit(mode, runs, node)
  env = ["MULTITENANT_KEY_DIR=#{File.join(LAB, "keys")}", "LAB=#{LAB}", "NODE=#{node}", *("STRACE=1" if STRACE)]
  id = sh!(*as("mtowner", *env, "sbatch", "--parsable", "--wckey=multitenant", "-t", "20", "-J", "bench", "-o", File.join(LAB, "out/job-%j.log"),
               "--chdir", LAB, File.join(LAB, "job.sh"), mode, runs.to_s)).strip
  raise "sbatch: #{id}" unless id.match?(/\A\d+\z/)

  id
end

# Waits for the job's last line ("done", or "failed" and the job's end) and returns its samples.
def finished(id)
  path = File.join(LAB, "out", id)
  read = -> { File.exist?(path) ? File.readlines(path, chomp: true) : [] }
  wait_for("job #{id} to finish", timeout: 600) { read.call.last == "done" || sh!("squeue", "-h", "-j", id, "-o", "%i").strip.empty? }
  lines = read.call
  log = File.join(LAB, "out/job-#{id}.log")
  raise "job #{id} did not finish: #{lines.last}; #{File.exist?(log) ? File.read(log) : ""}" unless lines.last == "done"

  lines[0...-1].map(&:split)
end

# slurmctld's time for each rename of these jobs by mtowner, in log order, from `offset` on.
def ctld_usecs(offset, ids)
  uid = Etc.getpwnam("mtowner").uid
  File.open(CTLD_LOG) do |f|
    f.seek(offset)
    f.each_line.filter_map do |l|
      m = l.match(/_slurm_rpc_update_job: complete JobId=(\d+) uid=#{uid} usec=(\d+)/)
      [m[1], m[2].to_i / 1000.0] if m && ids.include?(m[1])
    end
  end
end

def slow_calls(trace)
  File.readlines(trace, chomp: true).select { |l| l[/<(\d+\.\d+)>\z/, 1].to_f >= 0.1 }
end

samples = Hash.new { |h, k| h[k] = [] }
ctld_from = File.size(CTLD_LOG)

# Seal only, in this process: what the Ruby extension (the Rust core) takes per seal.
key = keys.sealing_key("mtclass")
msg = { "session_id" => "0f8fad5b-d9cb-469f-a165-70867728950e", "app" => "Bench", "method" => "card",
        "delivery" => "sys/multitenant-delivery_default", "connection" => { "host" => node, "url" => "http://#{node}:4000/" } }
20.times { MultiTenant::Envelope.seal(msg, key: key, group: "mtclass", job_id: "1", owner: "mtowner", cluster: "mtcluster") }
(RUNS * 20).times do
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  MultiTenant::Envelope.seal(msg, key: key, group: "mtclass", job_id: "1", owner: "mtowner", cluster: "mtcluster")
  samples["seal"] << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) * 1000
end

slow_traces = []
jobs = Hash.new { |h, k| h[k] = [] }
collect = lambda do |phase, id|
  rows = finished(id)
  rows.each { |kind, _, ms, polls| samples["#{kind}_#{phase}"] << ms.to_f; samples["polls_#{phase}"] << polls.to_i if polls }
  rows.select { |kind, _, ms| STRACE && kind == "publish" && ms.to_f > SLOW_MS }.each do |_, run, _|
    slow_traces << [id, File.join(LAB, "out/trace.#{id}.#{run}")]
  end
  jobs[phase] << id
end

# One job at a time, each publishing as it starts.
RUNS.times do |i|
  collect.call("start", submit("start", 1, node))
  warn "start job #{i + 1}/#{RUNS}" if ((i + 1) % 10).zero?
end
# BURSTS times BURST jobs submitted together (a class starting its services at once), each publishing as it starts.
BURSTS.times do |b|
  ids = Array.new(BURST) { submit("start", 1, node) }
  ids.each { |id| collect.call("burst", id) }
  warn "burst #{b + 1}/#{BURSTS}"
end
# RUNS publishes in one job that is in accounting already.
collect.call("steady", submit("steady", RUNS, node))

ctld = ctld_usecs(ctld_from, jobs.values.flatten)
by_job = ctld.group_by(&:first)
jobs.each { |phase, ids| samples["ctld_#{phase}"] = ids.flat_map { |id| (by_job[id] || []).map(&:last) } }

def stats(xs)
  s = xs.sort
  pick = ->(q) { s[[(q * s.size).ceil - 1, 0].max] }
  [s[s.size / 2], pick.call(0.9), s.last, s.count { |x| x > SLOW_MS }]
end

rows = [
  ["seal only: `MultiTenant::Envelope.seal` in process (Ruby → Rust)", "seal"],
  ["seal only: `mtshare publish --dry-run` (process start → name printed)", "dry_run_steady"],
  ["steady job: bare `scontrol update JobId= JobName=`", "bare_scontrol_steady"],
  ["steady job: `mtshare publish`, start → exit", "publish_steady"],
  ["steady job: `mtshare publish`, start → name visible to squeue", "visible_steady"],
  ["steady job: slurmctld's update RPC (its log; publish and bare)", "ctld_steady"],
  ["at job start, one job at a time: `mtshare publish`, start → exit", "publish_start"],
  ["at job start, one job at a time: start → name visible to squeue", "visible_start"],
  ["at job start, one job at a time: slurmctld's update RPC", "ctld_start"],
  ["at job start, #{BURST} jobs at once: `mtshare publish`, start → exit", "publish_burst"],
  ["at job start, #{BURST} jobs at once: start → name visible to squeue", "visible_burst"],
  ["at job start, #{BURST} jobs at once: slurmctld's update RPC", "ctld_burst"]
]
puts "| ms | runs | median | p90 | max | > #{SLOW_MS} ms |", "|---|---|---|---|---|---|"
rows.each do |label, key_|
  xs = samples[key_]
  next if xs.empty?

  f = key_ == "seal" ? "%.3f" : "%.1f"
  med, p90, max, slow = stats(xs)
  puts "| #{label} | #{xs.size} | #{format(f, med)} | #{format(f, p90)} | #{format(f, max)} | #{slow} |"
end
puts
%w[start burst steady].each do |phase|
  polls = samples["polls_#{phase}"].tally.sort.map { |n, c| "#{n}: #{c}" }.join(", ")
  hist = samples["publish_#{phase}"].map { |ms| ms < 100 ? 0 : ms < 500 ? 1 : ms < 1500 ? 2 : 3 }.tally
  puts "#{phase}: publish time (ms) < 100: #{hist[0] || 0}, 100-500: #{hist[1] || 0}, 500-1500: #{hist[2] || 0}, >= 1500: #{hist[3] || 0}; " \
       "squeue polls until the name showed: #{polls}"
end
slow = jobs.values_at("start", "burst").flatten.zip(samples["publish_start"] + samples["publish_burst"]).select { |_, ms| ms > SLOW_MS }
puts "publishes at job start over #{SLOW_MS} ms: #{slow.empty? ? "none" : slow.map { |id, ms| "job #{id} #{format("%.0f", ms)} ms (slurmctld #{by_job[id]&.map { |_, c| format("%.0f", c) }&.join("+") || "?"} ms)" }.join(", ")}"
slow_traces.each do |id, path|
  puts "", "strace of a slow publish (job #{id}), calls of 100 ms or more:"
  slow_calls(path).each { |l| puts "    #{l}" }
end
File.write(ENV["JSON"], JSON.pretty_generate("samples" => samples, "jobs" => jobs)) if ENV["JSON"]
