/*
 * kafka_config.h — what the supervisor tells the Kafka layer (consumer/),
 * taken from its configuration in one place: consumer/ knows nothing of
 * sf_config or of the supervisor's log.
 */
#ifndef SF_KAFKA_CONFIG_H
#define SF_KAFKA_CONFIG_H

#include "config.h"
#include "kafka.h"

/* Fills out from c, its log hook pointed at sf_log (events and fields as the layer names them). */
void sf_kafka_config_from(const sf_config *c, sf_kafka_config *out);

#endif
