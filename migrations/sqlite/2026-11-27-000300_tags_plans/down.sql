DROP TABLE service_templates;
DROP TABLE service_plans;
DROP TABLE tag_changes;
