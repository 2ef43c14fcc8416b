"""What the commands show: the plan table and HTML, plan diffs, reports and their rendering."""
