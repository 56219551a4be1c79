-- handoff cloud, schema 6: what site boxes said of each processor, for the
-- portal's processor table. `site_box` and `at`: the site box that last
-- relayed an applied event for the processor, and when (seconds since the
-- Unix epoch, the cloud's clock). `model` and `firmware`: what a site box
-- reported with a claim, `reported_by` and `reported_at` which and when
-- (all NULL until one does; older daemons never do). Claims of the site
-- box, not proven. No foreign key: like `processors`, kept when a Place
-- is deleted.

CREATE TABLE processor_reports (
    serial      bigint PRIMARY KEY,
    site_box    text NOT NULL,
    at          bigint NOT NULL,
    model       text,
    firmware    text,
    reported_by text,
    reported_at bigint
);
