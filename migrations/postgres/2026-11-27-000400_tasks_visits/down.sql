DROP TABLE tasks;
DROP TABLE visits;
