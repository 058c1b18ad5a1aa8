-- movielens_parquet(path): one MovieLens table written as a parquet file, read by column name
-- (the queries pick the MovieLens columns; others are ignored) with file_row_number, the
-- 0-based row in file order, for row-level messages. binary columns without a string
-- annotation (older hive and impala writers) are read as text
create or replace temp macro movielens_parquet(path) as table

    select * from read_parquet(path, binary_as_string = true, file_row_number = true)
