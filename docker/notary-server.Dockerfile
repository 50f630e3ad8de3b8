# notary-server from this workspace's binary (see scripts/build-images.sh): no base image.
FROM scratch
ADD notary-server.rootfs.tar /
USER 65534:65534
WORKDIR /data
EXPOSE 4443
ENTRYPOINT ["/usr/local/bin/notary-server"]
CMD ["--config", "/config/server.json"]
