/* test_config.c — the option table: defaults, file, env, flags, and errors that name the key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[] = "/tmp/sf-config-XXXXXX";

static const char *write_ini(const char *text)
{
    strcpy(path, "/tmp/sf-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(config, defaults_follow_the_seed_guide)
{
    sf_config c;
    sf_config_defaults(&c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_eq(c.pool.pool_size, 2 * cores);
    cr_expect_eq(c.pool.max_overflow, cores);
    cr_expect_eq(c.pool.checkout_timeout_ms, 5000);
    cr_expect_eq(c.pool.health_check_interval_ms, 30000);
    cr_expect_not(c.pool.lazy);
    char err[256];
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect(c.python[0] == '/');
}

Test(config, file_then_env_then_flags)
{
    sf_config c;
    sf_config_defaults(&c);
    char err[256];
    const char *f = write_ini("[pool]\npool_size = 3\nlazy = true\n[kafka]\nbootstrap.servers = "
                              "10.0.0.1:9092\n[python]\npreload = json\n");
    cr_assert_eq(sf_config_load_file(&c, f, err, sizeof(err)), 0, "%s", err);
    char *env[] = {"SNAKEFLEET_POOL_POOL_SIZE=5", "SNAKEFLEET_KAFKA_SOCKET_TIMEOUT_MS=1234",
                   "SNAKEFLEET_CACHE=/somewhere", "PATH=/bin", NULL};
    cr_assert_eq(sf_config_load_env(&c, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sf_config_set(&c, "pool.max_overflow=1", "flag", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(c.pool.pool_size, 5);
    cr_expect(c.pool.lazy);
    cr_expect_eq(c.pool.max_overflow, 1);
    cr_expect_str_eq(sf_config_kafka_get(&c, "bootstrap.servers"), "10.0.0.1:9092");
    cr_expect_str_eq(sf_config_kafka_get(&c, "socket.timeout.ms"), "1234");
    cr_expect_str_eq(c.pool.preload, "json");
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    sf_config_print(&c, m);
    fclose(m);
    cr_expect(strstr(out, "pool_size = 5    ; env SNAKEFLEET_POOL_POOL_SIZE") != NULL, "%s", out);
    cr_expect(strstr(out, "max_overflow = 1    ; flag") != NULL);
    cr_expect(strstr(out, "lazy = true    ; file ") != NULL);
    cr_expect(strstr(out, "checkout_timeout = 5000    ; default") != NULL);
    free(out);
    unlink(f);
}

Test(config, unknown_key_and_bad_values_name_the_key)
{
    sf_config c;
    char err[256];
    sf_config_defaults(&c);
    const char *f = write_ini("[pool]\npool_sise = 3\n");
    cr_expect_eq(sf_config_load_file(&c, f, err, sizeof(err)), -1);
    cr_expect(strstr(err, "pool_sise") && strstr(err, "[pool]"), "%s", err);
    unlink(f);
    cr_expect_eq(sf_config_set(&c, "pool.pool_size=lots", "flag", err, sizeof(err)), -1);
    cr_expect(strstr(err, "pool.pool_size") && strstr(err, "lots"), "%s", err);
    cr_expect_eq(sf_config_set(&c, "pool.pipeline_depth=0", "flag", err, sizeof(err)), -1);
    cr_expect(strstr(err, "out of range"), "%s", err);
    cr_expect_eq(sf_config_set(&c, "pool.lazy=maybe", "flag", err, sizeof(err)), -1);
    cr_expect(strstr(err, "pool.lazy"), "%s", err);
    cr_expect_eq(sf_config_set(&c, "nosuch.key=1", "flag", err, sizeof(err)), -1);
    cr_expect(strstr(err, "nosuch"), "%s", err);
    char *env[] = {"SNAKEFLEET_POOL_BOGUS=1", NULL};
    cr_expect_eq(sf_config_load_env(&c, env, err, sizeof(err)), -1);
    cr_expect(strstr(err, "bogus") && strstr(err, "SNAKEFLEET_POOL_BOGUS"), "%s", err);
    sf_config_defaults(&c);
    cr_assert_eq(
        sf_config_set(&c, "python.executable=python3", "--python.executable", err, sizeof(err)), 0);
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "python.executable (--python.executable)"), "names the source: %s", err);
    sf_config_defaults(&c);
    cr_assert_eq(sf_config_set(&c, "pool.affinity=sticky", "flag", err, sizeof(err)), 0);
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "pool.affinity"), "%s", err);
    sf_config_defaults(&c);
    cr_assert_eq(sf_config_set(&c, "python.executable=python3", "flag", err, sizeof(err)), 0);
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "absolute"), "%s", err);
}

Test(config, redis_password_comes_from_the_named_variable_only)
{
    sf_config c;
    char err[256];
    sf_config_defaults(&c);
    cr_assert_eq(sf_config_set(&c, "redis.password_env=SF_TEST_REDIS_PW", "flag", err, sizeof(err)),
                 0);
    unsetenv("SF_TEST_REDIS_PW");
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "redis.password_env") && strstr(err, "SF_TEST_REDIS_PW"), "%s", err);
    setenv("SF_TEST_REDIS_PW", "hunter2", 1);
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(c.redis_password, "hunter2");
    cr_expect_null(getenv("SF_TEST_REDIS_PW"), "the workers would inherit the password");
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    sf_config_print(&c, m);
    fclose(m);
    cr_expect(strstr(out, "hunter2") == NULL, "--print-config shows the password:\n%s", out);
    free(out);
    unsetenv("SF_TEST_REDIS_PW");
    sf_config_defaults(&c);
    cr_assert_eq(sf_config_set(&c, "redis.user=alice", "flag", err, sizeof(err)), 0);
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "redis.user"), "%s", err);
}

/* deploy/snakefleet.ini, the example production config: it loads the way the daemon loads it
 * and sets every option (a new option must be added there too). */
Test(config, deploy_example_loads_and_sets_every_option)
{
    const char *ini = SF_PYTHON_DIR "/../deploy/snakefleet.ini";
    sf_config c;
    char err[1024];
    sf_config_defaults(&c);
    cr_assert_eq(sf_config_load_file(&c, ini, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_eq(c.pool.pool_size, 2 * cores);
    cr_expect_eq(c.pool.max_overflow, cores);
    cr_expect_eq(c.pool.max_rss_mb, 2048);
    cr_expect_eq(c.shutdown_timeout_ms, 30000);
    cr_expect_eq(c.replication, 3);
    cr_expect_not(c.create_topics);
    cr_expect_eq(c.pool.affinity, SF_AFFINITY_HINT);
    cr_expect_str_eq(c.redis_url, "redis://redis.internal:6379/0");
    cr_expect_str_eq(c.http_listen, "127.0.0.1:9464");
    cr_expect_str_eq(c.python, "/opt/snakefleet/venv/bin/python");
    cr_expect_null(c.pool.preload);
    cr_expect_str_eq(sf_config_kafka_get(&c, "partition.assignment.strategy"), "range,roundrobin");
    cr_expect_str_eq(sf_config_kafka_get(&c, "socket.nagle.disable"), "true");
    cr_expect_not_null(sf_config_kafka_get(&c, "bootstrap.servers"));
    cr_expect_null(sf_config_kafka_get(&c, "group.instance.id")); /* commented out */
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    sf_config_print(&c, m);
    fclose(m);
    cr_expect(strstr(out, "; default") == NULL, "options missing from %s:\n%s", ini, out);
    free(out);
}

Test(config, partitioner_and_partition_check_are_checked_by_name)
{
    sf_config c;
    char err[512];
    sf_config_defaults(&c);
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(c.partitioner_name, "murmur2_random");
    cr_expect_eq(c.partitioner, SF_PARTITIONER_MURMUR2_RANDOM);
    cr_expect_eq(c.partition_check, SF_PARTITION_CHECK_REFUSE);
    cr_assert_eq(
        sf_config_set(&c, "topics.partitioner=consistent_random", "flag", err, sizeof(err)), 0);
    cr_assert_eq(sf_config_set(&c, "supervisor.partition_check=warn", "flag", err, sizeof(err)), 0);
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(c.partitioner, SF_PARTITIONER_CONSISTENT_RANDOM);
    cr_expect_eq(c.partition_check, SF_PARTITION_CHECK_WARN);
    cr_assert_eq(sf_config_set(&c, "supervisor.partition_check=off", "flag", err, sizeof(err)), 0);
    cr_assert_eq(sf_config_finish(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(c.partition_check, SF_PARTITION_CHECK_OFF);

    sf_config_defaults(&c);
    cr_assert_eq(
        sf_config_set(&c, "topics.partitioner=random", "--topics.partitioner", err, sizeof(err)),
        0);
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(strstr(err, "topics.partitioner (--topics.partitioner)") && strstr(err, "'random'") &&
                  strstr(err, "murmur2_random"),
              "%s", err);
    sf_config_defaults(&c);
    char *env[] = {"SNAKEFLEET_SUPERVISOR_PARTITION_CHECK=reject", NULL};
    cr_assert_eq(sf_config_load_env(&c, env, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sf_config_finish(&c, err, sizeof(err)), -1);
    cr_expect(
        strstr(err, "supervisor.partition_check (env SNAKEFLEET_SUPERVISOR_PARTITION_CHECK)") &&
            strstr(err, "'reject'"),
        "%s", err);
}

/* sf_config_load takes out what it used and leaves the program's own arguments. */
Test(config, load_takes_config_arguments_and_leaves_the_rest)
{
    static sf_config c;
    char err[512];
    char *envp[] = {"SNAKEFLEET_POOL_MAX_OVERFLOW=2", NULL};
    char *argv[] = {"prog", "--dev", "--pool.max_overflow=1", "--jsonl=x", "rest", NULL};
    int argc = 5;
    cr_assert_eq(sf_config_load(&c, &argc, argv, envp, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(c.pool.max_overflow, 1, "a flag wins over the environment");
    cr_assert_eq(argc, 4);
    cr_expect_str_eq(argv[1], "--dev");
    cr_expect_str_eq(argv[2], "--jsonl=x");
    cr_expect_str_eq(argv[3], "rest");
    cr_expect_null(argv[4]);

    char *bad[] = {"prog", "--pool.pool_size=lots", NULL};
    argc = 2;
    cr_expect_eq(sf_config_load(&c, &argc, bad, envp, err, sizeof(err)), -1);
    cr_expect(strstr(err, "pool_size") != NULL, "%s", err);
}
