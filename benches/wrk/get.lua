-- A plain GET (path and headers from wrk's command line); only here for the JSON report.
require("report")
