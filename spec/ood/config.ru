# What Passenger does for the PUN: the dashboard mounted under /pun/sys/dashboard.
require "/var/www/ood/apps/sys/dashboard/config/environment"
map(ENV.fetch("RAILS_RELATIVE_URL_ROOT", "/pun/sys/dashboard")) { run Rails.application }
