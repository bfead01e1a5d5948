# frozen_string_literal: true

# multitenant's admin tasks, for an OOD host. From the installed gem:
#   rake -f "$(gem contents multitenant | grep /admin.rake)" doctor
# Settings come from /etc/ood/config/apps/dashboard/env (and MULTITENANT_* in the environment);
# OOD_ETC and OOD_APPS point the tasks at another OOD tree.
$LOAD_PATH.unshift(File.join(__dir__, "lib"))
require "multitenant"
require "multitenant/admin"

admin = -> { MultiTenant::Admin.new }
say = ->(lines) { puts lines }

# One line, not a trace, for every problem the tasks report.
module MultiTenantAdminErrors
  def execute(args = nil)
    super
  rescue MultiTenant::Error, KeyError => e
    abort "multitenant: #{e.message}"
  end
end
Rake::Task.prepend(MultiTenantAdminErrors)

desc "Create a group's key (GROUP=name), or the site-wide key (SITE=1); ROTATE=1 adds a new key to an existing file; " \
     "DROP_OLD=1 (after ROTATE=1, once the shares sealed with the old key have ended) keeps only the newest key"
task(:keygen) do
  say.(admin.().keygen(group: ENV["GROUP"], site: ENV["SITE"] == "1", rotate: ENV["ROTATE"] == "1",
                       drop_old: ENV["DROP_OLD"] == "1"))
end

desc "Check Slurm, the keys and the OOD setup, and count running jobs still in the first implementation's format; each problem is one line with its fix"
task :doctor do
  problems, fine = admin.().doctor
  puts fine.map { |l| "ok       #{l}" }, problems.map { |l| "PROBLEM  #{l}" }
  abort "#{problems.size} problem(s)" unless problems.empty?
end

desc "List every running shared job: owner, group, app, format, size, and whether this host can open it; then jobs in the first implementation's format by owner"
task :list do
  a = admin.()
  say.(a.list)
  abort a.list_problems.map { |p| "multitenant: problem: #{p}" }.join("\n") unless a.list_problems.empty?
end

desc "Decode one share: JOB=<id> (JOB=<id>@<cluster> with several clusters), or NAME=<job name> JOB_ID=<id> OWNER=<user> CLUSTER=<Slurm cluster> [RESTARTS=<n>]"
task(:decode) { say.(admin.().decode(job_id: ENV["JOB"] || ENV["JOB_ID"], name: ENV["NAME"], owner: ENV["OWNER"],
                                         cluster: ENV["CLUSTER"], restarts: ENV["RESTARTS"])) }

desc "Install the apps, the initializer, the env lines and the dismiss cluster entries (dry run unless APPLY=1; MULTITENANT_PUBLISHER=, MULTITENANT_SUBMIT_CLUSTER=, MULTITENANT_KEY_DIR= set the env values)"
task(:install) { say.(admin.().install(apply: ENV["APPLY"] == "1")) }

desc "Remove every card multitenant wrote for USER_NAME=name (DATAROOT= overrides ~/$OOD_DATAROOT or ~/ondemand/data/sys/dashboard)"
task(:purge) { say.(admin.().purge(user: ENV.fetch("USER_NAME") { raise MultiTenant::InputError, "give USER_NAME=<user>" }, dataroot: ENV["DATAROOT"])) }
