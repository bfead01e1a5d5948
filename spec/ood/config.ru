# What Passenger does for the PUN: the dashboard mounted under /pun/sys/dashboard, its log lines
# written as they happen (Passenger reads them line by line into the PUN's error log).
$stdout.sync = true
require "/var/www/ood/apps/sys/dashboard/config/environment"
map(ENV.fetch("RAILS_RELATIVE_URL_ROOT", "/pun/sys/dashboard")) { run Rails.application }
