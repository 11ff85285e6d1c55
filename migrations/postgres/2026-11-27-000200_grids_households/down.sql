DROP TABLE members;
DROP TABLE households;
DROP TABLE grid_assignments;
DROP TABLE grids;
